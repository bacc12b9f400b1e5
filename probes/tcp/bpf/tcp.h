// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// Shared by every TCP probe object: the record type and the helpers that
// read a socket. The ring is in ring.h.
#pragma once

#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_core_read.h"
#include "bpf_endian.h"
#include "bpf_tracing.h"
#include "ring.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6

struct tcp_record {
	__u8 kind;            // first, as in every record of the ring
	__u8 oldstate;
	__u8 newstate;
	__u8 fin_received;    // SOCK_DONE: the peer's FIN was taken in
	__u32 netns;          // network namespace inode of the socket
	__u64 ts_ns;
	__u64 sk;             // socket address: the connection's key while it lives
	__u64 ino;            // socket inode, to find the owner in /proc when pid is unknown
	__u64 bytes_acked;    // tcp_sock counters (include SYN/FIN sequence numbers)
	__u64 bytes_received;
	__u32 snd_una;
	__u32 write_seq;
	__u32 srtt_us;        // smoothed RTT in microseconds
	__u32 total_retrans;
	__u32 pid;            // tgid, only where the hook runs in the owner's context
	__u32 sweep;          // sweep generation (snapshot, sweep end)
	__u32 drops;          // sweep end: snapshots lost so far (cumulative)
	__s32 err;            // sk_err at a failed connect
	__u16 family;
	__u16 sport;          // local port, host order
	__u16 dport;          // remote port, host order
	__u8 saddr[16];       // local address (IPv4 in the first 4 bytes)
	__u8 daddr[16];       // remote address
	char comm[16];
};

// Makes the type visible in BTF for bpf2go -type without typing the map.
const struct tcp_record *unused_tcp_record __attribute__((unused));

// Records this object could not reserve (ring buffer full), read by the agent.
__u64 lost = 0;

static __always_inline struct tcp_record *reserve_counted(__u64 *lost_count)
{
	struct tcp_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(lost_count, 1);
		return 0;
	}
	__builtin_memset(r, 0, sizeof(*r));
	r->ts_ns = bpf_ktime_get_ns();
	return r;
}

static __always_inline struct tcp_record *reserve(void)
{
	return reserve_counted(&lost);
}

static __always_inline void submit(struct tcp_record *r)
{
	ring_submit(r);
}

// Addresses, ports and netns straight from the socket: any socket,
// TIME_WAIT and request sockets too (sock_common only). The programs get
// sk from tp_btf or an iterator, so these are plain loads, not
// bpf_probe_read_kernel calls (~20-30 ns each here). The remote port is
// skc_dport, valid at CLOSE (skc_num may be 0 by then).
static __always_inline void fill_sock(struct tcp_record *r, const struct sock *sk)
{
	const struct sock_common *c = &sk->__sk_common;
	r->sk = (__u64)sk;
	r->family = c->skc_family;
	r->netns = c->skc_net.net->ns.inum;
	r->dport = bpf_ntohs(c->skc_dport);
	if (r->family == AF_INET6) {
		__builtin_memcpy(r->saddr, c->skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
		__builtin_memcpy(r->daddr, c->skc_v6_daddr.in6_u.u6_addr8, 16);
	} else {
		*(__u32 *)r->saddr = c->skc_rcv_saddr;
		*(__u32 *)r->daddr = c->skc_daddr;
	}
}

// Full sockets only: local port (inet_sport survives the unhash at CLOSE),
// inode and the tcp_sock counters.
static __always_inline void fill_full(struct tcp_record *r, const struct tcp_sock *tp)
{
	const struct sock *sk = &tp->inet_conn.icsk_inet.sk;
	r->sport = bpf_ntohs(tp->inet_conn.icsk_inet.inet_sport);
	const struct socket *so = sk->sk_socket;
	if (so && so->file)
		r->ino = so->file->f_inode->i_ino;
	r->bytes_acked = tp->bytes_acked;
	r->bytes_received = tp->bytes_received;
	r->snd_una = tp->snd_una;
	r->write_seq = tp->write_seq;
	r->srtt_us = tp->srtt_us >> 3;
	r->total_retrans = tp->total_retrans;
	r->fin_received = (sk->__sk_common.skc_flags >> bpf_core_enum_value(enum sock_flags, SOCK_DONE)) & 1;
}

static __always_inline void fill_task(struct tcp_record *r)
{
	r->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(&r->comm, sizeof(r->comm));
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
