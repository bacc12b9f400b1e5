// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The one cgroup_skb program pair on the root of the cgroup v2 hierarchy,
// shared by the captures that read packets (DNS, HTTP). Every packet of
// every socket on the node runs it, so it does as little as it can: the IP
// and transport headers, read in place, decide which capture's program, if
// any, the packet goes on to (a tail call). A capture that is off leaves
// its slot empty, and a tail call to an empty slot falls through: no flag
// to read, and nothing but the branch for traffic no capture wants.
//   - UDP or TCP to port 53 (egress) or from it (ingress): DNS;
//   - any other TCP segment with at least 16 bytes of payload: HTTP (no
//     request or status line is shorter; ACKs and handshakes stop here).
// Attached once however many captures use it: the hook's cost is paid once
// per packet, not once per capture.
#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_endian.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define DNS_PORT 53
#define HTTP_MIN 16 // payload bytes HTTP capture looks at (its HEAD)

// The slots, as probes/cgroup's Slot.
enum { SLOT_DNS = 0, SLOT_HTTP = 1, NSLOTS };

// One array a direction: a prog array takes programs of one attach type.
struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, NSLOTS);
	__type(key, __u32);
	__type(value, __u32);
} egress_next SEC(".maps"), ingress_next SEC(".maps");

static __always_inline int dispatch(struct __sk_buff *skb, void *next, bool egress)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u8 proto;
	__u32 l4;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;
		if ((void *)(ip + 1) > data_end)
			return 1;
		proto = ip->protocol;
		l4 = ip->ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;
		if ((void *)(ip6 + 1) > data_end)
			return 1;
		proto = ip6->nexthdr; // extension headers: not followed
		l4 = sizeof(*ip6);
	} else {
		return 1;
	}
	if (l4 < 20 || l4 > 60)
		return 1;
	if (proto == IPPROTO_TCP) {
		struct tcphdr *th = data + l4;
		if ((void *)(th + 1) > data_end)
			return 1;
		// Everything read from the packet is read before the first tail
		// call: a tail call that falls through leaves packet pointers
		// invalid for some verifiers (6.12 refused th after it).
		__u16 port = egress ? th->dest : th->source;
		__u32 payload = l4 + th->doff * 4;
		if (port == bpf_htons(DNS_PORT))
			bpf_tail_call_static(skb, next, SLOT_DNS); // returns only when DNS is off
		if (skb->len >= payload + HTTP_MIN)
			bpf_tail_call_static(skb, next, SLOT_HTTP);
		return 1;
	}
	if (proto == IPPROTO_UDP) {
		struct udphdr *uh = data + l4;
		if ((void *)(uh + 1) > data_end)
			return 1;
		if ((egress ? uh->dest : uh->source) == bpf_htons(DNS_PORT))
			bpf_tail_call_static(skb, next, SLOT_DNS);
	}
	return 1;
}

SEC("cgroup_skb/egress")
int root_egress(struct __sk_buff *skb) { return dispatch(skb, &egress_next, true); }

SEC("cgroup_skb/ingress")
int root_ingress(struct __sk_buff *skb) { return dispatch(skb, &ingress_next, false); }

char LICENSE[] SEC("license") = "Dual BSD/GPL";
