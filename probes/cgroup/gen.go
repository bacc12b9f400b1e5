package cgroup

//go:generate go tool bpf2go -cc clang -cflags "-O2 -g -Wall -Werror" -target bpfel root bpf/root.c -- -I../include
