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
	r->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	if (!r->sport) // a full socket already unhashed (RST on close): inet_sport survives
		r->sport = bpf_ntohs(BPF_CORE_READ((struct inet_sock *)sk, inet_sport));
	r->newstate = BPF_CORE_READ(sk, __sk_common.skc_state);
	submit(r);
	return 0;
}

SEC("tracepoint/tcp/tcp_retransmit_skb")
int on_retransmit(struct trace_event_raw_tcp_retransmit_skb *ctx)
{
	return emit(ctx->skaddr, REC_RETRANSMIT);
}

SEC("tracepoint/tcp/tcp_send_reset")
int on_send_reset(struct trace_event_raw_tcp_send_reset *ctx)
{
	return emit(ctx->skaddr, REC_RESET_SENT);
}

SEC("tracepoint/tcp/tcp_receive_reset")
int on_receive_reset(struct trace_event_raw_tcp_event_sk *ctx)
{
	return emit(ctx->skaddr, REC_RESET_RECEIVED);
}
