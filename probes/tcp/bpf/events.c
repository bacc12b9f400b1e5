// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Retransmits and resets: rare, slow-path events, one record each.
#include "tcp.h"

// lost (tcp.h) counts retransmit records; resets have their own count.
__u64 lost_reset = 0;

static __always_inline int emit(const struct sock *sk, __u8 kind)
{
	if (!sk)
		return 0; // a reset for a segment that matched no socket
	struct tcp_record *r = reserve_counted(kind == REC_RETRANSMIT ? &lost : &lost_reset);
	if (!r)
		return 0;
	r->kind = kind;
	fill_sock(r, sk);
	r->sport = sk->__sk_common.skc_num;
	if (!r->sport) { // a full socket already unhashed (RST on close): inet_sport survives
		struct tcp_sock *tp = bpf_skc_to_tcp_sock((void *)sk);
		if (tp)
			r->sport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	}
	r->newstate = sk->__sk_common.skc_state;
	submit(r);
	return 0;
}

// tp_btf: the socket is read with plain loads. Only the first argument is
// declared, the one every kernel's version of these tracepoints has.
SEC("tp_btf/tcp_retransmit_skb")
int BPF_PROG(on_retransmit, const struct sock *sk)
{
	return emit(sk, REC_RETRANSMIT);
}

SEC("tp_btf/tcp_send_reset")
int BPF_PROG(on_send_reset, const struct sock *sk)
{
	return emit(sk, REC_RESET_SENT);
}

SEC("tp_btf/tcp_receive_reset")
int BPF_PROG(on_receive_reset, const struct sock *sk)
{
	return emit(sk, REC_RESET_RECEIVED);
}
