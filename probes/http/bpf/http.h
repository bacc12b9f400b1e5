// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// What both HTTP capture objects share: the record they write into the
// ring, the look at a stream's first bytes, and where a call's user buffer
// starts. sock.c is the first choice; syscall.c serves kernels without the
// sock_*_length tracepoints.
#pragma once

#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_core_read.h"
#include "bpf_endian.h"
#include "ring.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define PREFIX 192 // bytes of a request kept: the request line and, often, traceparent
#define HEAD 16    // bytes of a response kept: "HTTP/1.1 200 OK\r"

enum { DIR_SENT = 0, DIR_RECEIVED = 1 };
enum { BUF_PLAIN = 0, BUF_IOVEC = 1, BUF_MSGHDR = 2 };

struct http_record {
	__u8 kind;      // first, as in every record of the ring
	__u8 dir;       // of the request (or of the lone response)
	__u16 family;   // 0 on a lone response: its request named the socket
	__u32 netns;
	__u64 ts_ns;    // the request's (or lone response's) time
	__u64 end_ns;   // the response's time (EXCHANGE) or the close's (UNANSWERED)
	__u64 sk;
	__u64 cookie;   // the socket's cookie, on a tally slot's first exchange only
	__u32 pid;
	__u32 size;     // bytes of the request's call
	__u32 captured; // valid bytes of data
	__u16 sport;    // local port
	__u16 dport;    // remote port
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[16];
	__u16 head_len; // valid bytes of head
	__u8 slot;      // 1 + the tally slot this exchange opened (sock.c); 0: none
	__u8 pad[5];    // data starts 8-aligned: it is copied in words
	__u8 head[HEAD]; // the response's first bytes
	__u8 data[PREFIX]; // the request's first bytes; a record may end after data[captured-1]
};

const struct http_record *unused_http_record __attribute__((unused));

// Exchanges counted in the kernel (sock.c with tally on).
#define NSLOTS 4    // per socket
#define NBOUNDS 17  // latency bucket bounds, set by the loader
#define NBUCKETS (NBOUNDS + 1)

struct tally_slot {
	__u64 key;      // route_key of the exchanges it counts; 0: free
	__u64 sum_ns;   // their latencies
	__u32 n;        // exchanges counted (a hint for the tally: counts are the truth)
	__u32 sampled;  // buckets whose exchange was sent whole since the last tally
	__u16 status;
	__u8 dir;       // of the requests
	__u8 pad[5];
	__u32 counts[NBUCKETS];
};

// A socket's counts since its last tally; final when it closed.
struct http_tally {
	__u8 kind; // HTTP_TALLY
	__u8 final;
	__u16 family;
	__u32 netns;
	__u64 sk;
	__u64 cookie;
	__u16 sport;
	__u16 dport;
	__u32 pad;
	struct tally_slot slots[NSLOTS];
};

const struct http_tally *unused_http_tally __attribute__((unused));

__u64 lost = 0;

// Whether a stream starting with this byte may be HTTP.
static __always_inline bool classify_start(__u8 b)
{
	return b == 'G' || b == 'P' || b == 'H' || b == 'D' || b == 'O';
}

// What the first bytes start, if anything. Userspace checks the whole line.
static __always_inline __u8 classify(const __u8 *p)
{
	switch (p[0]) {
	case 'G': return p[1] == 'E' && p[2] == 'T' && p[3] == ' ' ? HTTP_REQUEST : 0;
	case 'P':
		if (p[1] == 'O' && p[2] == 'S' && p[3] == 'T') return HTTP_REQUEST;
		if (p[1] == 'U' && p[2] == 'T' && p[3] == ' ') return HTTP_REQUEST;
		if (p[1] == 'A' && p[2] == 'T' && p[3] == 'C') return HTTP_REQUEST;
		return 0;
	case 'H':
		if (p[1] == 'E' && p[2] == 'A' && p[3] == 'D') return HTTP_REQUEST;
		if (p[1] == 'T' && p[2] == 'T' && p[3] == 'P' && p[4] == '/' && p[5] == '1' && p[6] == '.')
			return HTTP_RESPONSE;
		return 0;
	case 'D': return p[1] == 'E' && p[2] == 'L' && p[3] == 'E' ? HTTP_REQUEST : 0;
	case 'O': return p[1] == 'P' && p[2] == 'T' && p[3] == 'I' ? HTTP_REQUEST : 0;
	}
	return 0;
}

// The user buffer a call reads into or writes from: plain, the first iovec,
// or the first iovec of a msghdr. len is narrowed to that iovec's.
static __always_inline __u64 first_buf(__u64 arg, __u8 how, __u64 *len)
{
	if (how == BUF_MSGHDR) {
		struct user_msghdr msg = {};
		if (bpf_probe_read_user(&msg, sizeof(msg), (void *)arg))
			return 0;
		arg = (__u64)msg.msg_iov;
	}
	if (how != BUF_PLAIN) {
		struct iovec iov = {};
		if (bpf_probe_read_user(&iov, sizeof(iov), (void *)arg))
			return 0;
		if (iov.iov_len < *len)
			*len = iov.iov_len;
		return (__u64)iov.iov_base;
	}
	return arg;
}

// The bytes carried over from reads too short to tell what a stream starts
// with: Go's HTTP server, for one, reads a single byte to watch for a
// closing client, and the request line continues in the next read.
struct carry {
	__u8 n;
	__u8 b[7];
};

// The first bytes of a call: those carried from earlier reads, then the
// call's own. Each call reads user memory once, into the CPU's peek, and
// everything after copies from there: on some machines (this PVM guest) a
// user read costs ~130 ns however short, a copy a few.
struct peek {
	__u8 b[PREFIX];
	__u32 n; // valid bytes of b
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct peek);
} peeks SEC(".maps");

// peek reads up to PREFIX-8 bytes of the call's buffer after the bytes c
// carries (NULL: none). NULL when the buffer cannot be read.
static __always_inline struct peek *peek(__u64 buf, __u64 avail, const struct carry *c)
{
	__u32 zero = 0;
	struct peek *p = bpf_map_lookup_elem(&peeks, &zero);
	if (!p)
		return 0;
	__u32 k = 0;
	if (c) {
		k = c->n & 7;
		__builtin_memcpy(p->b, c->b, 7); // what lies past k the read overwrites
	}
	__u32 n = avail < PREFIX - 8 ? avail : PREFIX - 8;
	if (bpf_probe_read_user(p->b + k, n, (void *)buf))
		return 0;
	p->n = k + n;
	return p;
}

// short_read is true when a received stream is still too short to tell what
// it starts (under 8 bytes so far), cur then holding the bytes to carry on;
// skip is set when it starts nothing HTTP.
static __always_inline bool short_read(const struct peek *p, struct carry *cur, bool *skip)
{
	if (p->n >= 8)
		return false;
	*skip = (cur->n & 7) == 0 && !classify_start(p->b[0]);
	cur->n = p->n;
	__builtin_memcpy(cur->b, p->b, 7);
	return true;
}

// fill_sock sets r's addresses and network namespace from sk. Each object
// has its own: sock.c's socket comes from the tracepoint, trusted, and is
// read directly; syscall.c's is found through the fd table, read with
// bpf_probe_read_kernel.
static __always_inline void fill_sock(struct http_record *r, struct sock *sk);

// fill_meta sets r to a request of size bytes on sk at ts, but for its
// bytes and who made it.
static __always_inline void fill_meta(struct http_record *r, struct sock *sk, __u8 dir, __u32 size, __u64 ts)
{
	r->kind = HTTP_REQUEST;
	r->dir = dir;
	r->ts_ns = ts;
	r->end_ns = 0;
	r->sk = (__u64)sk;
	r->size = size;
	r->head_len = 0;
	r->slot = 0;
	r->cookie = 0;
}

// fill_call sets r to the request in the call but for who made it: which
// socket, when (ts), and its first bytes.
static __always_inline void fill_call(struct http_record *r, struct sock *sk, __u8 dir, __u32 size,
				      const struct peek *p, __u64 ts)
{
	fill_meta(r, sk, dir, size, ts);
	__builtin_memcpy(r->data, p->b, PREFIX);
	r->captured = p->n;
}

// fill_who sets the process (id from bpf_get_current_pid_tgid) and the
// socket's addresses.
static __always_inline void fill_who(struct http_record *r, struct sock *sk, __u64 id)
{
	r->pid = id >> 32;
	bpf_get_current_comm(&r->comm, sizeof(r->comm));
	fill_sock(r, sk);
}

// fill_request sets r to the request in the call.
static __always_inline void fill_request(struct http_record *r, struct sock *sk, __u8 dir, __u32 size,
					 const struct peek *p)
{
	fill_call(r, sk, dir, size, p, bpf_ktime_get_ns());
	fill_who(r, sk, bpf_get_current_pid_tgid());
}

// fill_head sets a response's first bytes in r.
static __always_inline void fill_head(struct http_record *r, const struct peek *p)
{
	__builtin_memcpy(r->head, p->b, HEAD);
	r->head_len = p->n < HEAD ? p->n : HEAD;
}

// emit_response writes a response alone.
static __always_inline void emit_response(struct sock *sk, __u8 dir, __u32 size, const struct peek *p)
{
	struct http_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&lost, 1);
		return;
	}
	r->kind = HTTP_RESPONSE;
	r->dir = dir;
	r->family = 0;
	r->pid = 0;
	r->ts_ns = bpf_ktime_get_ns();
	r->end_ns = 0;
	r->sk = (__u64)sk;
	r->size = size;
	r->captured = 0;
	r->slot = 0;
	r->cookie = 0;
	fill_head(r, p);
	ring_submit(r);
}

// emit_request writes a request alone.
static __always_inline void emit_request(struct sock *sk, __u8 dir, __u32 size, const struct peek *p)
{
	struct http_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&lost, 1);
		return;
	}
	fill_request(r, sk, dir, size, p);
	ring_submit(r);
}
