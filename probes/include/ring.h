// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The one ring buffer every probe object writes into (the loader hands the
// first object's map to the others), so the agent reads all records in the
// order the kernel produced them. Every record starts with its kind.
#pragma once

#include "vmlinux.h"
#include "bpf_helpers.h"

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 1 << 23);
} events SEC(".maps");

// Below this many queued bytes a record does not wake the reader: waking it
// per record costs most of the throughput of a busy server (DESIGN.md). The
// reader polls with a short deadline, so quiet periods still flow.
volatile const __u64 wakeup_bytes = 256 * 1024;

static __always_inline void ring_submit(void *r, bool urgent)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (urgent || bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	bpf_ringbuf_submit(r, flags);
}

// ring_output copies a record (from a map value, say) into the ring.
static __always_inline long ring_output(void *r, __u64 size, bool urgent)
{
	__u64 flags = BPF_RB_NO_WAKEUP;
	if (urgent || bpf_ringbuf_query(&events, BPF_RB_AVAIL_DATA) >= wakeup_bytes)
		flags = BPF_RB_FORCE_WAKEUP;
	return bpf_ringbuf_output(&events, r, size, flags);
}
