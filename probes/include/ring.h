// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The one ring buffer every probe object writes into (the loader hands the
// first object's map to the others), so the agent reads all records in the
// order the kernel produced them. Every record starts with its kind.
#pragma once

#include "vmlinux.h"
#include "bpf_helpers.h"

// Record kinds, the first byte of every record: one enum per probe family,
// <family>_record_kind, its kinds contiguous. The one definition: the Go
// constants (probes/kind) are generated from these enums by make generate.
enum tcp_record_kind {
	REC_CONNECT = 1,    // client: SYN_SENT -> ESTABLISHED
	REC_CONNECT_FAIL,   // client: SYN_SENT -> CLOSE (err says why)
	REC_ACCEPT,         // server: SYN_RECV -> ESTABLISHED
	REC_CLOSE,          // established socket reached CLOSE; final counters
	REC_LISTEN,         // CLOSE -> LISTEN (process context: owner is current)
	REC_LISTEN_CLOSE,   // LISTEN -> CLOSE
	REC_SNAPSHOT,       // periodic counters of a live socket (iterator)
	REC_SWEEP_END,      // iterator finished one network namespace
	REC_RETRANSMIT,     // one retransmitted segment
	REC_RESET_SENT,     // this end sent a RST
	REC_RESET_RECEIVED, // this end received a RST
};

enum http_record_kind {
	HTTP_REQUEST = 32, // a request alone; its response comes as its own record
	HTTP_RESPONSE,     // a response alone
	HTTP_EXCHANGE,     // a request and its response, paired in the kernel
	HTTP_UNANSWERED,   // a request whose connection closed before any response
	HTTP_TALLY,        // exchanges counted in the kernel, per socket (sock.c)
};

enum dns_record_kind {
	DNS_QUERY = 40, // a query a client sent
	DNS_RESPONSE,   // a response a client received
};

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
