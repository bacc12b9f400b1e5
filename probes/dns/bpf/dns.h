// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// What both DNS objects share: the record and what a DNS header must say.
#pragma once

#include "vmlinux.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define IPPROTO_UDP 17
#define DNS_PORT 53
#define MSG_MAX 512 // what the agent keeps of a message
#define HDR 12      // DNS header

struct dns_record {
	__u8 kind;  // first, as in every record of the ring
	__u8 proto; // IPPROTO_UDP or IPPROTO_TCP
	__u16 family;
	__u32 netns;
	__u64 ts_ns;
	__u32 pid;
	__u32 size;     // bytes of the message (TCP: without the length prefix)
	__u32 captured; // bytes of data that are valid
	__u16 sport;    // local port
	__u16 dport;    // remote port
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[16];
	__u8 data[MSG_MAX];
};

const struct dns_record *unused_dns_record __attribute__((unused));

// A standard query: QR 0, opcode 0, one question, no answers or authority.
static __always_inline bool is_query(const __u8 *h)
{
	return (h[2] & 0xf8) == 0 && h[4] == 0 && h[5] == 1 && h[6] == 0 && h[7] == 0 && h[8] == 0 && h[9] == 0;
}

// A standard response with its question.
static __always_inline bool is_response(const __u8 *h)
{
	return (h[2] & 0xf8) == 0x80 && h[4] == 0 && h[5] == 1;
}

