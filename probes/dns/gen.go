package dns

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type dns_record dns bpf/dns.c -- -I../include
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type dns_record skb bpf/skb.c -- -I../include
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type dns_record sock bpf/sock.c -- -I../include
