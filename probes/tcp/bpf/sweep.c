// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Periodic snapshot of every TCP socket of one network namespace (the one
// the reading thread is in), written into the shared ring buffer so that
// snapshots and lifecycle records reach the agent in one order.
#include "tcp.h"

__u32 sweep_gen = 0;     // set by the agent before each read
__u64 sweep_drops = 0;   // snapshots lost to a full ring, cumulative

SEC("iter/tcp")
int sweep(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	struct tcp_record *r;

	if (!skc) {
		// End of the walk: tell the agent which sockets it has now seen.
		r = reserve();
		if (!r)
			return 0;
		r->kind = REC_SWEEP_END;
		r->sweep = sweep_gen;
		r->drops = sweep_drops;
		// Not bpf_get_current_task_btf(): 5.10 has no such helper (5.11+).
		struct task_struct *task = (struct task_struct *)bpf_get_current_task();
		r->netns = BPF_CORE_READ(task, nsproxy, net_ns, ns.inum);
		submit(r);
		return 0;
	}

	// Full sockets only: TIME_WAIT and request sockets have no counters.
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	int state = skc->skc_state;
	if (state == TCP_SYN_SENT || state == TCP_SYN_RECV || state == TCP_CLOSE)
		return 0;

	r = reserve();
	if (!r) {
		__sync_fetch_and_add(&sweep_drops, 1);
		return 0;
	}
	r->kind = REC_SNAPSHOT;
	r->sweep = sweep_gen;
	r->newstate = state;
	fill_sock(r, (struct sock *)tp);
	fill_full(r, tp);
	submit(r);
	return 0;
}
