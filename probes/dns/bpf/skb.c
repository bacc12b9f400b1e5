// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// DNS messages of clients, from the packets their sockets send and
// receive: cgroup_skb egress and ingress programs, handed every UDP or TCP
// packet to or from port 53 of every socket on the node by the program
// pair on the root of the cgroup v2 hierarchy (probes/cgroup/bpf/root.c).
//   - egress: a UDP datagram or TCP segment to port 53 whose payload starts
//     with a standard query is a query; the sender is the current task
//     (a locally generated packet leaves in its sender's system call);
//   - ingress: one from port 53 starting with a response is a response,
//     queued to the client's socket before the client can read it, so it
//     is in the ring before any connect the answer leads to.
// The payload is read from the kernel's own copy (bpf_skb_load_bytes): no
// user memory, no buffer to find. Other packets cost the root's look at
// their headers and stop there; nothing else a process does (reads,
// writes, files) passes at all.
#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_endian.h"
#include "ring.h"
#include "dns.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define TCP_PER_SEGMENT 4 // length-prefixed messages looked at in one segment

extern void *bpf_cast_to_kern_ctx(void *) __ksym;

__u64 lost = 0;

// emit copies the message at off (len bytes in the packet, size in all).
// local and remote are the client's and the server's ends.
static __always_inline void emit(struct __sk_buff *skb, __u8 kind, __u8 proto, __u16 family, const void *local,
				 const void *remote, __u16 lport, __u16 rport, __u32 off, __u32 len, __u32 size)
{
	struct dns_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&lost, 1);
		return;
	}
	r->kind = kind;
	r->proto = proto;
	r->family = family;
	r->ts_ns = bpf_ktime_get_ns();
	r->size = size;
	r->sport = lport;
	r->dport = rport;
	__builtin_memset(r->saddr, 0, sizeof(r->saddr));
	__builtin_memset(r->daddr, 0, sizeof(r->daddr));
	if (family == AF_INET6) {
		__builtin_memcpy(r->saddr, local, 16);
		__builtin_memcpy(r->daddr, remote, 16);
	} else {
		__builtin_memcpy(r->saddr, local, 4);
		__builtin_memcpy(r->daddr, remote, 4);
	}
	// The client's namespace is its socket's.
	struct sk_buff *k = bpf_cast_to_kern_ctx(skb);
	struct sock *sk = k->sk;
	r->netns = sk ? sk->__sk_common.skc_net.net->ns.inum : 0;
	if (kind == DNS_QUERY) {
		r->pid = bpf_get_current_pid_tgid() >> 32;
		bpf_get_current_comm(&r->comm, sizeof(r->comm));
	} else {
		// Softirq: whoever runs is no one's. The agent takes the owner
		// from the query.
		r->pid = 0;
		__builtin_memset(r->comm, 0, sizeof(r->comm));
	}
	__u64 n = len < MSG_MAX ? len : MSG_MAX;
	asm volatile("" : "+r"(n)); // keep both bounds checks below for the verifier
	r->captured = 0;
	if (n >= 1 && n <= MSG_MAX && !bpf_skb_load_bytes(skb, off, r->data, n))
		r->captured = n;
	ring_submit(r);
}

static __always_inline __u16 be16(const __u8 *p) { return (__u16)p[0] << 8 | p[1]; }

// A query (egress) or response (ingress) starting at off, after skip
// bytes of TCP's two-byte length (0: none, UDP), up to end. Returns the
// bytes it took, 0 when what is there is not a DNS message.
static __always_inline __u32 message(struct __sk_buff *skb, bool egress, __u8 proto, __u16 family,
				     const void *local, const void *remote, __u16 lport, __u16 rport, __u32 off,
				     __u32 end, __u32 skip)
{
	__u8 h[HDR + 2] = {};
	if (off + skip + HDR + 5 > end || bpf_skb_load_bytes(skb, off, h, sizeof(h)))
		return 0;
	__u32 size = end - off - skip;
	if (skip) {
		size = be16(h);
		if (size < HDR + 5)
			return 0;
	}
	const __u8 *m = skip ? h + 2 : h;
	if (egress ? !is_query(m) : !is_response(m))
		return 0;
	__u32 here = end - off - skip; // of this message, in this packet
	if (here > size)
		here = size;
	emit(skb, egress ? DNS_QUERY : DNS_RESPONSE, proto, family, local, remote, lport, rport, off + skip, here,
	     size);
	return skip + size;
}

static __always_inline int on_skb(struct __sk_buff *skb, bool egress)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u8 proto;
	__u16 family;
	__u32 l4;
	const void *src, *dst;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;
		if ((void *)(ip + 1) > data_end)
			return 1;
		proto = ip->protocol;
		if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
			return 1;
		l4 = ip->ihl * 4;
		family = AF_INET;
		src = &ip->saddr;
		dst = &ip->daddr;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;
		if ((void *)(ip6 + 1) > data_end)
			return 1;
		proto = ip6->nexthdr;
		if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
			return 1;
		l4 = sizeof(*ip6);
		family = AF_INET6;
		src = &ip6->saddr;
		dst = &ip6->daddr;
	} else {
		return 1;
	}
	if (l4 < 20 || l4 > 60)
		return 1;
	// Both transports start with the two ports.
	__be16 *ports = data + l4;
	if ((void *)(ports + 2) > data_end)
		return 1;
	__u16 sport = bpf_ntohs(ports[0]), dport = bpf_ntohs(ports[1]);
	if (egress ? dport != DNS_PORT : sport != DNS_PORT)
		return 1; // everything that is not DNS ends here

	__u32 off;
	if (proto == IPPROTO_UDP) {
		off = l4 + 8;
	} else {
		struct tcphdr *th = data + l4;
		if ((void *)(th + 1) > data_end)
			return 1;
		off = l4 + th->doff * 4;
	}
	// Copy the addresses: the helpers below may move the packet.
	__u8 saddr[16] = {}, daddr[16] = {};
	if (family == AF_INET6) {
		__builtin_memcpy(saddr, src, 16);
		__builtin_memcpy(daddr, dst, 16);
	} else {
		__builtin_memcpy(saddr, src, 4);
		__builtin_memcpy(daddr, dst, 4);
	}
	__u32 end = skb->len;
	const void *local = egress ? saddr : daddr, *remote = egress ? daddr : saddr;
	__u16 lport = egress ? sport : dport, rport = egress ? dport : sport;
	if (proto == IPPROTO_UDP) {
		message(skb, egress, proto, family, local, remote, lport, rport, off, end, 0);
		return 1;
	}
	// A TCP segment may carry several length-prefixed messages (a
	// resolver's A and AAAA written back to back), or a message whose
	// length went in a segment of its own (written alone, then held back
	// by Nagle).
	if (off + 2 >= end)
		return 1; // no payload (a SYN, an ACK), or a lone length
	for (int i = 0; i < TCP_PER_SEGMENT; i++) {
		__u32 took = message(skb, egress, proto, family, local, remote, lport, rport, off, end, 2);
		if (!took) {
			if (i == 0)
				message(skb, egress, proto, family, local, remote, lport, rport, off, end, 0);
			break;
		}
		off += took;
	}
	return 1;
}

SEC("cgroup_skb/egress")
int dns_egress(struct __sk_buff *skb) { return on_skb(skb, true); }

SEC("cgroup_skb/ingress")
int dns_ingress(struct __sk_buff *skb) { return on_skb(skb, false); }

char LICENSE[] SEC("license") = "Dual BSD/GPL";
