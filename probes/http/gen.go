package http

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type http_record -type http_tally -type tally_slot sock bpf/sock.c -- -I../include
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel syscall bpf/syscall.c -- -I../include
//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel skb bpf/skb.c -- -I../include
