// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Connection lifecycle from the inet_sock_set_state tracepoint (tp_btf: the
// socket is read with plain loads). Emits at most two
// records per connection and end (established, closed); nothing per packet.
#include "tcp.h"

// Owner of a connecting socket, taken at SYN_SENT where connect() runs in the
// owner's context; the later transitions run in softirq, where current is
// whoever happened to be on the CPU.
struct owner {
	__u32 pid;
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct owner);
} connecting SEC(".maps");

SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(on_state, const struct sock *sk, int old, int new)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;

	__u64 key = (__u64)sk;
	__u8 kind;

	if (new == TCP_SYN_SENT) {
		struct owner o = {.pid = bpf_get_current_pid_tgid() >> 32};
		bpf_get_current_comm(&o.comm, sizeof(o.comm));
		bpf_map_update_elem(&connecting, &key, &o, BPF_ANY);
		return 0;
	}

	if (old == TCP_SYN_SENT && new == TCP_ESTABLISHED)
		kind = REC_CONNECT;
	else if (old == TCP_SYN_SENT && new == TCP_CLOSE)
		kind = REC_CONNECT_FAIL;
	else if (old == TCP_SYN_RECV && new == TCP_ESTABLISHED)
		kind = REC_ACCEPT;
	else if (new == TCP_LISTEN)
		kind = REC_LISTEN;
	else if (old == TCP_LISTEN && new == TCP_CLOSE)
		kind = REC_LISTEN_CLOSE;
	else if (new == TCP_CLOSE && old != TCP_SYN_RECV && old != TCP_CLOSE)
		kind = REC_CLOSE;
	else
		return 0;

	struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
	struct tcp_record *r = tp ? reserve() : 0;
	if (!r) {
		if (kind == REC_CONNECT || kind == REC_CONNECT_FAIL)
			bpf_map_delete_elem(&connecting, &key);
		return 0;
	}
	r->kind = kind;
	r->oldstate = old;
	r->newstate = new;
	fill_sock(r, sk);
	fill_full(r, tp);

	if (kind == REC_LISTEN) {
		fill_task(r); // listen() runs in the owner's context
	} else if (kind == REC_CONNECT || kind == REC_CONNECT_FAIL) {
		struct owner *o = bpf_map_lookup_elem(&connecting, &key);
		if (o) {
			r->pid = o->pid;
			__builtin_memcpy(r->comm, o->comm, sizeof(r->comm));
		}
		if (kind == REC_CONNECT_FAIL)
			r->err = sk->sk_err;
		bpf_map_delete_elem(&connecting, &key);
	}
	submit(r);
	return 0;
}
