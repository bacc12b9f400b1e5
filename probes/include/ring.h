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

// Records never wake the reader: the agent drains the ring on a timer
// (probes/ring), which costs less than any wake-up, batched or not.
static __always_inline void ring_submit(void *r)
{
	bpf_ringbuf_submit(r, BPF_RB_NO_WAKEUP);
}

// ring_output copies a record (from a map value, say) into the ring.
static __always_inline long ring_output(void *r, __u64 size)
{
	return bpf_ringbuf_output(&events, r, size, BPF_RB_NO_WAKEUP);
}
