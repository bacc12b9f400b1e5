// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// What the two pairing objects share: sock.c (the sock_*_length
// tracepoints, a call's user buffer) and skb.c (cgroup_skb, a segment's
// bytes) keep a socket's waiting request in socket-local storage, pair it
// with its response, and count exchanges in the kernel with tally on. Only
// where they find the bytes, and when a response may come before its
// request is seen, do they differ.
#pragma once

#include "http.h"

#define TCP_SYN_SENT 2
#define TCP_CLOSE 7

// The socket's cookie when an exchange opens a tally slot. sock.c asks the
// kernel; skb.c's packet programs may ask only of a packet
// (bpf_get_socket_cookie takes the skb there), so it keeps the cookie
// taken when the socket's storage was made and defines this first.
#ifndef slot_cookie
#define slot_cookie(sk, st) bpf_get_socket_cookie(sk)
#endif

// A socket's state. In sock.c, IDLE to PENDING and IDLE to EARLY race (the
// send and receive hooks of one exchange on two CPUs), so they are
// compare-and-swaps; skb.c has no EARLY: a packet's request is seen before
// its answer can exist.
enum { IDLE = 0, PENDING = 1, LONE = 2, EARLY = 3 };

// Set by the loader.
const volatile bool tally = false;        // count exchanges here rather than send them
const volatile bool collapse_ids = false; // key routes with identifier segments as one
const volatile __u64 bounds_ns[NBOUNDS] = {}; // the latency buckets' upper bounds
// The benchmark's floor: find each call's buffer (each segment's payload)
// and read its first bytes, then stop. What any capture from these hooks
// must pay at least.
const volatile bool floor_only = false;

struct http_sock {
	struct http_record req; // the request waiting for its response (PENDING)
	__u64 route;            // route_key of req's request line, 0 until hashed
	struct carry carry;
	__u64 state;            // 64 bits: the compare-and-swap's width
	__u8 answered;          // an exchange completed on this socket before
	__u8 line;              // length of the request line route hashes, 0: none
	__u8 tallied;           // the socket has tallies storage (its close flushes it)
	__u64 line_fp;          // line_print of the request line route hashes (skb.c)
	// sock.c: bpf_get_current_pid_tgid of req's call, 0: req never filled;
	// skb.c: the socket's owner, whose pid and comm req keeps, 0: unknown.
	__u64 who;
	// skb.c: the sequence number of the last message start seen each way
	// (a retransmission starts at the same one), valid where seen has the
	// direction's bit.
	__u32 start_seq[2];
	__u8 seen;
	__u64 cookie;           // skb.c: the socket's cookie (slot_cookie)
	// sock.c: a response read before its request's send returned (EARLY).
	__u64 early_ns;
	__u32 early_seq;        // the socket's write_seq when it was read
	__u32 early_size;
	__u8 early_head[HEAD];
	__u16 early_len;
};

// What a slot's counts were at the last tally. A slot's counts only grow,
// by plain increments: a socket's exchanges are counted one at a time, by
// the hook of each one's response (two responses of one socket counted at
// once would already have broken its pairing state), while a tally may
// read them from another CPU meanwhile (the iterator holds the socket's
// lock, but the ingress hook runs before TCP takes it). So a tally sends
// what grew since the last one and keeps what it sent, and counting pays
// no atomic operation (three were ~25 ns per exchange here, by bpf_stats).
// A tally may see an exchange's bucket and not yet its latency: the next
// one carries it.
struct tally_taken {
	__u64 sum_ns;
	__u32 n;
	__u32 counts[NBUCKETS];
};

struct http_tallies {
	struct tally_slot slots[NSLOTS];
	struct tally_taken taken[NSLOTS]; // written by tallies only
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct http_sock);
} socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct http_tallies);
} tallies SEC(".maps");

static __always_inline void fill_sock(struct http_record *r, struct sock *sk)
{
	struct sock_common *c = &sk->__sk_common;
	r->family = c->skc_family;
	r->netns = c->skc_net.net->ns.inum;
	r->sport = c->skc_num;
	r->dport = bpf_ntohs(c->skc_dport);
	if (r->family == AF_INET6) {
		__builtin_memcpy(r->saddr, c->skc_v6_rcv_saddr.in6_u.u6_addr8, 16);
		__builtin_memcpy(r->daddr, c->skc_v6_daddr.in6_u.u6_addr8, 16);
	} else {
		__builtin_memset(r->saddr, 0, sizeof(r->saddr));
		__builtin_memset(r->daddr, 0, sizeof(r->daddr));
		*(__u32 *)r->saddr = c->skc_rcv_saddr;
		*(__u32 *)r->daddr = c->skc_daddr;
	}
}

// output copies the socket's record into the ring, up to the bytes it
// captured: a record's cost in the ring grows with its size (bpf_stats at
// 50k requests/s: about 0.5 µs for 176 bytes, 1.1 µs for the whole 328),
// and a short request needs half the record.
static __always_inline void output(struct http_sock *st)
{
	__u32 n = st->req.captured;
	if (n > PREFIX)
		n = PREFIX;
	if (ring_output(&st->req, offsetof(struct http_record, data) + n))
		__sync_fetch_and_add(&lost, 1);
}

#define FNV_OFFSET 0xcbf29ce484222325ULL
#define FNV_PRIME 0x100000001b3ULL
#define ID_MARK 0x1d1d1d1d1d1d1d1dULL

static __always_inline __u64 mix(__u64 h, __u64 v) { return (h ^ v) * FNV_PRIME; }

enum { IN_METHOD, IN_PATH, IN_QUERY, IN_VERSION };

struct route_scan {
	__u32 n;     // captured bytes
	__u8 phase;
	__u8 hex;    // the segment so far is hex digits and dashes
	__u8 v;      // bytes of the version matched
	__u32 len, digits; // of the segment so far
	__u64 h, seg;
	__u64 key;   // the result once the line is complete
	__u32 line;  // and the line's length, its \r included
};

// The scan's state lives in a map value, not on the stack: the verifier
// then takes its fields as unknown and checks the loop's body once, where
// it would follow every constant a stack copy holds through every byte.
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct route_scan);
} scans SEC(".maps");

struct scan_ctx {
	struct route_scan *s;
	const __u8 *data;
};

// is_id mirrors the agent's route heuristic (agent/route isID): a segment
// it templates to {id}.
static __always_inline bool is_id(struct route_scan *s)
{
	if (s->len == 0)
		return false;
	return s->digits == s->len || (s->hex && s->digits > 0 && s->len >= 8) || (s->digits > 0 && s->len >= 16);
}

static __always_inline void end_segment(struct route_scan *s, __u8 c)
{
	s->h = mix(s->h, collapse_ids && is_id(s) ? ID_MARK : s->seg);
	s->h = mix(s->h, c == '/' ? '/' : ' ');
	s->seg = FNV_OFFSET;
	s->len = s->digits = 0;
	s->hex = 1;
}

static long scan_byte(__u64 i, struct scan_ctx *x)
{
	struct route_scan *s = x->s;
	if (i >= s->n || i >= PREFIX)
		return 1; // the line is not whole: no key
	__u8 c = x->data[i];
	switch (s->phase) {
	case IN_METHOD:
		s->h = mix(s->h, c);
		if (c == ' ')
			s->phase = IN_PATH;
		return 0;
	case IN_PATH:
		if (c == '/' || c == ' ' || c == '?' || c == '#') {
			end_segment(s, c);
			if (c == ' ')
				s->phase = IN_VERSION;
			else if (c != '/')
				s->phase = IN_QUERY;
			return 0;
		}
		if (c < 0x21 || c > 0x7e)
			return 1; // the agent refuses such a path; let it see every one
		s->seg = mix(s->seg, c);
		s->len++;
		if (c >= '0' && c <= '9')
			s->digits++;
		else if (!((c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F') || c == '-'))
			s->hex = 0;
		return 0;
	case IN_QUERY: // not part of the route
		if (c == ' ')
			s->phase = IN_VERSION;
		return 0;
	}
	// "HTTP/1.1\r" or "HTTP/1.0\r", as the agent's parser wants a whole line.
	__u8 v = s->v, want;
	switch (v) {
	case 0: want = 'H'; break;
	case 1: case 2: want = 'T'; break;
	case 3: want = 'P'; break;
	case 4: want = '/'; break;
	case 5: case 7: want = '1'; break;
	case 6: want = '.'; break;
	case 8: want = '\r'; break;
	default: return 1;
	}
	if (c != want && !(v == 7 && c == '0'))
		return 1;
	if (v == 8) {
		s->key = s->h | 1; // never 0, the free slot's key
		s->line = i + 1;
		return 1;
	}
	s->v = v + 1;
	return 0;
}

// route_key hashes a request's method and path as the agent's route
// templates see them: every request with one key gets one route, method and
// validity there. Identifier segments hash alike when collapse_ids, so
// /users/1 and /users/2 share a slot; the query is left out, as the agent
// leaves it. 0 when the request line is not whole in the captured bytes.
static __always_inline __u64 route_key(const struct http_record *r, __u8 *line)
{
	__u32 zero = 0;
	struct route_scan *s = bpf_map_lookup_elem(&scans, &zero);
	if (!s)
		return 0;
	*s = (struct route_scan){.n = r->captured, .hex = 1, .h = FNV_OFFSET, .seg = FNV_OFFSET};
	struct scan_ctx x = {.s = s, .data = r->data};
	bpf_loop(PREFIX, scan_byte, &x, 0);
	*line = s->key ? s->line : 0;
	return s->key;
}

// same_line is true when b starts with a's first len bytes: a request line
// the socket sent or received before, whose route key it keeps. Hashing
// costs ~15 ns a byte here; comparing words, a few for the whole line.
static __always_inline bool same_line(const __u8 *a, const __u8 *b, __u32 len)
{
	for (int i = 0; i < PREFIX / 8; i++) {
		__u32 at = i * 8;
		if (at >= len)
			return true;
		__u64 x = *(const __u64 *)(a + at) ^ *(const __u64 *)(b + at);
		if (len - at < 8)
			x &= (1ULL << ((len - at) * 8)) - 1; // little-endian: the first bytes are the low ones
		if (x)
			return false;
	}
	return true;
}

// line_print is a 64-bit fingerprint of a's first len bytes. skb.c loads
// a request's bytes straight into the socket's record, over the last
// request's, so it tells whether the request line is the one route hashed
// by this print rather than by comparing the bytes (a copy of the request
// would cost what it saves). The route key itself is a 64-bit hash: the
// print adds a chance of confusing two lines of the same order, 2^-64.
static __always_inline __u64 line_print(const __u8 *a, __u32 len)
{
	__u64 h = FNV_OFFSET ^ len;
	for (int i = 0; i < PREFIX / 8; i++) {
		__u32 at = i * 8;
		if (at >= len)
			break;
		__u64 x = *(const __u64 *)(a + at);
		if (len - at < 8)
			x &= (1ULL << ((len - at) * 8)) - 1;
		h = (h ^ x) * FNV_PRIME;
	}
	return h;
}

// final_status is the status of a head the agent accepts (HTTP/1.x, three
// digits, then a space or the line's end) when it may be tallied: 2xx to 4xx.
// 0 otherwise.
static __always_inline __u16 final_status(const struct http_record *r)
{
	const __u8 *h = r->head;
	if (r->head_len < 13 || h[0] != 'H' || h[1] != 'T' || h[2] != 'T' || h[3] != 'P' || h[4] != '/' ||
	    h[5] != '1' || h[6] != '.' || (h[7] != '1' && h[7] != '0') || h[8] != ' ')
		return 0;
	if (h[9] < '2' || h[9] > '4' || h[10] < '0' || h[10] > '9' || h[11] < '0' || h[11] > '9' ||
	    (h[12] != ' ' && h[12] != '\r'))
		return 0;
	return (h[9] - '0') * 100 + (h[10] - '0') * 10 + (h[11] - '0');
}

static __always_inline __u32 bucket(__u64 d)
{
	__u32 i;
	for (i = 0; i < NBOUNDS; i++)
		if (d <= bounds_ns[i])
			break;
	return i;
}

// count tallies the socket's completed exchange; false when it must be sent
// whole. A slot's first exchange is sent here, before the slot is taken, so
// no tally of the slot reaches the ring ahead of it.
static __always_inline bool count(struct sock *sk, struct http_sock *st)
{
	if (!st->answered) { // most sockets that answer once never answer again
		st->answered = 1;
		return false;
	}
	__u16 status = final_status(&st->req);
	if (!status)
		return false;
	__u64 route = st->route;
	if (!route) {
		if (!(route = st->route = route_key(&st->req, &st->line)))
			return false;
		st->line_fp = line_print(st->req.data, st->line);
	}
	struct http_tallies *t = bpf_sk_storage_get(&tallies, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!t)
		return false;
	st->tallied = 1;
	__u64 d = st->req.end_ns - st->req.ts_ns;
	__u32 b = bucket(d);
	if (b >= NBUCKETS)
		return false;
	for (int i = 0; i < NSLOTS; i++) {
		struct tally_slot *s = &t->slots[i];
		if (!s->key) {
			s->status = status;
			s->dir = st->req.dir;
			s->sampled = 1u << b;
			st->req.slot = i + 1;
			st->req.cookie = slot_cookie(sk, st);
			output(st);
			st->req.slot = 0;
			s->key = route;
			return true;
		}
		if (s->key != route || s->status != status || s->dir != st->req.dir)
			continue;
		if (!(s->sampled & (1u << b))) { // the bucket's exemplar candidate this sweep
			s->sampled |= 1u << b;
			return false;
		}
		s->counts[b]++;
		s->sum_ns += d;
		s->n++;
		return true;
	}
	return false;
}

// flush sends what the socket counted since its last tally, as a tally
// record. Tallies of one socket do not overlap: the iterator holds the
// socket's lock, and a close (the final flush, which frees the slots too)
// happens under it.
static __always_inline void flush(struct sock *sk, struct http_tallies *t, bool final)
{
	bool any = false;
	for (int i = 0; i < NSLOTS; i++)
		if (final ? t->slots[i].key != 0 : t->slots[i].n != t->taken[i].n)
			any = true;
	if (!any) {
		for (int i = 0; i < NSLOTS; i++)
			t->slots[i].sampled = 0;
		return;
	}
	struct http_tally *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		if (final)
			__sync_fetch_and_add(&lost, 1);
		return; // the counts wait for the next tally
	}
	r->kind = HTTP_TALLY;
	r->final = final;
	r->family = sk->__sk_common.skc_family;
	r->netns = sk->__sk_common.skc_net.net->ns.inum;
	r->sport = sk->__sk_common.skc_num;
	r->dport = bpf_ntohs(sk->__sk_common.skc_dport);
	r->pad = 0;
	r->sk = (__u64)sk;
	r->cookie = bpf_get_socket_cookie(sk);
	for (int i = 0; i < NSLOTS; i++) {
		struct tally_slot *s = &t->slots[i], *o = &r->slots[i];
		struct tally_taken *k = &t->taken[i];
		o->key = s->key;
		o->status = s->status;
		o->dir = s->dir;
		o->sampled = 0;
		__builtin_memset(o->pad, 0, sizeof(o->pad));
		// Each count read once: counting may add to it meanwhile.
		__u32 n = *(volatile __u32 *)&s->n;
		o->n = n - k->n;
		k->n = n;
		for (int b = 0; b < NBUCKETS; b++) {
			__u32 c = *(volatile __u32 *)&s->counts[b];
			o->counts[b] = c - k->counts[b];
			k->counts[b] = c;
		}
		__u64 sum = *(volatile __u64 *)&s->sum_ns;
		o->sum_ns = sum - k->sum_ns;
		k->sum_ns = sum;
		s->sampled = 0;
		if (final) { // the slot starts anew if the socket connects again
			s->key = 0;
			__builtin_memset(s->counts, 0, sizeof(s->counts));
			s->n = 0;
			s->sum_ns = 0;
			__builtin_memset(k, 0, sizeof(*k));
		}
	}
	ring_submit(r);
}

// complete sends or counts the socket's request, answered by the response
// whose first bytes are head and len, read at end.
static __always_inline void complete(struct sock *sk, struct http_sock *st, const __u8 *head, __u16 len, __u64 end)
{
	__builtin_memcpy(st->req.head, head, HEAD);
	st->req.head_len = len;
	st->req.kind = HTTP_EXCHANGE;
	st->req.end_ns = end;
	if (!tally || !count(sk, st))
		output(st);
}

// on_close sends the socket's request still waiting, as unanswered, and
// its last counts.
static __always_inline void on_close(struct sock *sk, struct http_sock *st)
{
	if (st->state == PENDING) {
		st->req.kind = HTTP_UNANSWERED;
		st->req.end_ns = bpf_ktime_get_ns();
		st->req.head_len = 0;
		output(st);
		st->state = IDLE;
	}
	if (st->tallied) { // a second lookup only where there is something to find
		struct http_tallies *t = bpf_sk_storage_get(&tallies, sk, 0, 0);
		if (t)
			flush(sk, t, true);
	}
}

// Each read of this iterator moves the new counts of every socket of the
// reading thread's network namespace into the ring. (A walk of the storage
// map itself, iter/bpf_sk_storage_map, would cover every namespace at once,
// but kernels may refuse to load it: 6.18 here says EPERM.)
SEC("iter/tcp")
int http_counts(struct bpf_iter__tcp *ctx)
{
	struct sock_common *skc = ctx->sk_common;
	if (!skc)
		return 0;
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(skc);
	if (!tp)
		return 0;
	struct sock *sk = (struct sock *)tp;
	struct http_tallies *t = bpf_sk_storage_get(&tallies, sk, 0, 0);
	if (t)
		flush(sk, t, false);
	return 0;
}
