// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// What the two call-level objects share, dns.c (the syscall tracepoints)
// and sock.c (the socket tracepoints): the message is in the caller's
// memory, found from the call's arguments, and the ends come from the
// socket and the address the call names.
#pragma once

#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_core_read.h"
#include "bpf_endian.h"
#include "ring.h"
#include "dns.h"

enum { BUF_PLAIN = 0, BUF_IOVEC = 1, BUF_MSGHDR = 2, BUF_MMSG = 3 };

__u64 lost = 0;

// A remote end: from a sockaddr the call named, or the connected socket's.
struct peer {
	__u16 family;
	__u16 port; // host order
	__u8 addr[16];
};

static __always_inline __u16 be16(const __u8 *p) { return (__u16)p[0] << 8 | p[1]; }

// The peer a sockaddr names; false if none or not IP.
static __always_inline bool read_sockaddr(__u64 uaddr, struct peer *p)
{
	if (!uaddr)
		return false;
	struct sockaddr_in6 sa = {};
	if (bpf_probe_read_user(&sa, sizeof(sa), (void *)uaddr))
		return false;
	p->family = sa.sin6_family;
	p->port = bpf_ntohs(sa.sin6_port);
	if (sa.sin6_family == AF_INET) {
		__builtin_memset(p->addr, 0, sizeof(p->addr));
		__builtin_memcpy(p->addr, &((struct sockaddr_in *)&sa)->sin_addr, 4);
		return true;
	}
	if (sa.sin6_family == AF_INET6) {
		__builtin_memcpy(p->addr, &sa.sin6_addr, 16);
		return true;
	}
	return false;
}

// The connected peer of sk; port 0 when unconnected.
static __always_inline void sock_peer(struct sock *sk, struct peer *p)
{
	p->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	p->port = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (p->family == AF_INET6) {
		BPF_CORE_READ_INTO(&p->addr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		__builtin_memset(p->addr, 0, sizeof(p->addr));
		BPF_CORE_READ_INTO((__u32 *)p->addr, sk, __sk_common.skc_daddr);
	}
}

// emit copies the message at buf (len bytes, size in all) into a record.
static __always_inline void emit(struct sock *sk, __u8 kind, const struct peer *server, __u64 buf, __u64 len,
				 __u32 size)
{
	struct dns_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&lost, 1);
		return;
	}
	r->kind = kind;
	r->proto = BPF_CORE_READ(sk, sk_protocol);
	r->ts_ns = bpf_ktime_get_ns();
	r->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(&r->comm, sizeof(r->comm));
	r->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	r->size = size;
	r->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	r->dport = server->port;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	r->family = family;
	if (family == AF_INET6) {
		BPF_CORE_READ_INTO(&r->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
	} else {
		__builtin_memset(r->saddr, 0, sizeof(r->saddr));
		BPF_CORE_READ_INTO((__u32 *)r->saddr, sk, __sk_common.skc_rcv_saddr);
	}
	if (family == AF_INET6 && server->family == AF_INET) {
		// An IPv4 server reached from a dual-stack socket: say it mapped.
		__builtin_memset(r->daddr, 0, 10);
		r->daddr[10] = 0xff;
		r->daddr[11] = 0xff;
		__builtin_memcpy(r->daddr + 12, server->addr, 4);
	} else {
		__builtin_memcpy(r->daddr, server->addr, 16);
	}
	// Clamped in the register the read is given: 5.10's and 6.1's verifiers
	// lost the bound of clang's select ("R2 min value is negative").
	__u64 n = len;
	asm volatile("if %[n] <= %[max] goto +1\n\t%[n] = %[max]" : [n] "+r"(n) : [max] "i"(MSG_MAX));
	r->captured = n;
	if (bpf_probe_read_user(r->data, n, (void *)buf))
		r->captured = 0;
	ring_submit(r);
}

// The first buffer of an iovec array. A lone two-byte first buffer is
// TCP's length prefix (glibc's writev, musl's recvmsg): the message is the
// second, and *prefix says 2 bytes of the call went before it.
static __always_inline __u64 iov_buf(__u64 iovp, __u64 iovcnt, __u64 *len, __u64 *prefix)
{
	struct iovec iov[2] = {};
	if (!iovp || bpf_probe_read_user(&iov[0], sizeof(iov[0]), (void *)iovp))
		return 0;
	if (iov[0].iov_len == 2 && iovcnt >= 2 &&
	    !bpf_probe_read_user(&iov[1], sizeof(iov[1]), (void *)(iovp + sizeof(struct iovec)))) {
		*len = iov[1].iov_len;
		*prefix = 2;
		return (__u64)iov[1].iov_base;
	}
	*len = iov[0].iov_len;
	return (__u64)iov[0].iov_base;
}
