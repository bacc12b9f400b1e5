package http

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel -type http_record http bpf/http.c -- -I../include
