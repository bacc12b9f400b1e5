// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// HTTP/1.x on TCP from the packets of every socket: cgroup_skb egress and
// ingress programs, handed each TCP segment with a payload of 16 bytes or
// more by the program pair on the root of the cgroup v2 hierarchy
// (probes/cgroup/bpf/root.c, shared with DNS capture, which takes port
// 53's), read the first bytes of each from the kernel's own
// copy (bpf_skb_load_bytes): no user memory, no buffer to find, nothing on
// the path of reads and writes. A segment that starts no request or
// response costs a look at the headers and one 16-byte load.
//
// Pairing, lone records, unanswered requests and tally are pair.h's, as in
// sock.c. What differs:
//   - The unit is a segment, not a call. A message that does not start a
//     segment is not seen: a second pipelined request (or its response)
//     written while the first was still unsent, or merged by GRO. The
//     call-level hooks miss the same messages when they share a call (a
//     server reading two pipelined requests at once). A client that
//     pipelines in separate segments turns its socket to lone records, as
//     in sock.c. Messages whose first segment holds under 16 bytes are not
//     seen either (no valid request or status line is that short).
//   - Retransmissions: a segment that starts at the same sequence number as
//     the last message seen in its direction is a copy and is skipped.
//     Ingress runs before TCP's own checks, so the copy does reach here.
//   - Timing: a client's exchange runs from its request's first segment
//     leaving to the response's first segment arriving (before the client
//     reads it); a server's from the request's arrival (before the server
//     reads it: time in the receive queue counts) to the response's first
//     segment leaving. Egress always precedes the peer's ingress, so no
//     response can come before its request is seen (sock.c's EARLY).
//   - Process: ingress runs in softirq, in whatever task was interrupted,
//     so nothing received names a process. A client's requests name the
//     socket's owner: the process that connected it (kept at SYN_SENT,
//     which a connect makes in its caller), or, for sockets connected
//     before the probe, whoever runs the request's first egress (the
//     sender, unless its segment was held back and left from softirq). A
//     server's records name none: the agent names the server by its
//     listener.
//   - A request whose segment completes a handshake (the client's last ACK
//     lost, TCP Fast Open) reaches ingress with the listener for socket,
//     and is not seen.
#define slot_cookie(sk, st) ((st)->cookie)
#include "pair.h"
#include "bpf_tracing.h"

#define ETH_P_IP 0x0800
#define ETH_P_IPV6 0x86DD
#define TCP_TIME_WAIT 6
#define TCP_LISTEN 10
#define TCP_NEW_SYN_RECV 12

// Who connected a socket, from its SYN_SENT until its first request.
struct owner {
	__u64 who; // bpf_get_current_pid_tgid
	char comm[16];
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct owner);
} owners SEC(".maps");

// segment finds a TCP segment's payload (off) and sequence number.
static __always_inline bool segment(struct __sk_buff *skb, __u32 *off, __u32 *seq)
{
	void *data = (void *)(long)skb->data;
	void *data_end = (void *)(long)skb->data_end;
	__u32 l4;
	if (skb->protocol == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip = data;
		if ((void *)(ip + 1) > data_end || ip->protocol != IPPROTO_TCP)
			return false;
		l4 = ip->ihl * 4;
	} else if (skb->protocol == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6 = data;
		if ((void *)(ip6 + 1) > data_end || ip6->nexthdr != IPPROTO_TCP)
			return false; // extension headers: not followed
		l4 = sizeof(*ip6);
	} else {
		return false;
	}
	if (l4 < 20 || l4 > 60)
		return false;
	struct tcphdr *th = data + l4;
	if ((void *)(th + 1) > data_end)
		return false;
	*off = l4 + th->doff * 4;
	*seq = bpf_ntohl(th->seq);
	return true;
}

// repeated is true when a message start at seq was seen last in dir: the
// segment is a retransmission. Otherwise seq is kept as the last.
static __always_inline bool repeated(struct http_sock *st, __u8 dir, __u32 seq)
{
	__u8 bit = 1 << (dir & 1);
	if ((st->seen & bit) && st->start_seq[dir & 1] == seq)
		return true;
	st->start_seq[dir & 1] = seq;
	st->seen |= bit;
	return false;
}

// name sets the process a sent request names: the socket's owner.
static __always_inline void name(struct sock *sk, struct http_sock *st)
{
	struct owner *o = bpf_sk_storage_get(&owners, sk, 0, 0);
	if (o) {
		st->who = o->who;
		__builtin_memcpy(st->req.comm, o->comm, sizeof(o->comm));
		bpf_sk_storage_delete(&owners, sk);
	} else {
		st->who = bpf_get_current_pid_tgid();
		bpf_get_current_comm(&st->req.comm, sizeof(st->req.comm));
	}
	st->req.pid = st->who >> 32;
}

// now is the time of a segment. On egress, TCP's own clock as the
// transmit that sends it refreshed it (tcp_write_xmit reads the clock
// before it builds segments; measured here under the ping-pong and curl:
// 0.2 µs before this hook on average, 0.1 % of segments over 1 µs, none
// over 75 µs), read from the socket: a clock read costs ~25 ns here, two
// per exchange. On ingress that clock is the socket's last event's, so the
// clock is read.
static __always_inline __u64 now(struct tcp_sock *tp)
{
	return tp ? tp->tcp_clock_cache : bpf_ktime_get_ns();
}

// set_sock sets the record's addresses when they are not the socket's:
// its first request, or a socket connected anew (the ports tell). They are
// read from the kernel's socket, which ingress takes the trouble to find
// only then.
static __always_inline void set_sock(struct http_sock *st, struct bpf_sock *bs, struct tcp_sock *tp)
{
	if (st->req.family && st->req.sport == bs->src_port && st->req.dport == bpf_ntohs(bs->dst_port))
		return;
	if (!tp)
		tp = bpf_skc_to_tcp_sock(bs);
	if (tp)
		fill_sock(&st->req, (struct sock *)tp);
}

// load_request loads a request's first bytes (up to PREFIX - 8) at off
// into dst: how many, 0 when it is too short or the load failed.
static __always_inline __u64 load_request(struct __sk_buff *skb, __u32 off, __u32 size, __u8 *dst)
{
	__u64 n = size < PREFIX - 8 ? size : PREFIX - 8;
	asm volatile("" : "+r"(n)); // keep both bounds for the verifier
	if (n < HEAD || n > PREFIX - 8 || bpf_skb_load_bytes(skb, off, dst, n))
		return 0;
	return n;
}

// on_request keeps the request starting at off, its first bytes loaded
// straight into the socket's record where the floor loads them into the
// CPU's peek: no 192-byte copy from there (with the compare it needed,
// ~15-20 ns per exchange by bpf_stats).
static __always_inline void on_request(struct __sk_buff *skb, struct bpf_sock *bs, struct tcp_sock *tp, __u8 dir,
				       __u32 seq, __u32 off, __u32 size)
{
	struct sock *sk = (struct sock *)bs; // for socket storage and the record's sk
	struct http_sock *st = bpf_sk_storage_get(&socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		__sync_fetch_and_add(&lost, 1);
		return;
	}
	if (!st->cookie) // new storage
		st->cookie = bpf_get_socket_cookie(skb);
	if (repeated(st, dir, seq))
		return;
	__u64 state = st->state;
	if (state == PENDING) { // pipelining: the agent pairs this socket from now on
		st->state = state = LONE;
		st->req.kind = HTTP_REQUEST;
		output(st);
	}
	__u64 n = load_request(skb, off, size, st->req.data);
	if (!n) {
		st->route = 0; // the last request's bytes are gone
		if (state != LONE)
			st->state = IDLE;
		return;
	}
	if (tally && !(st->line && n >= st->line && line_print(st->req.data, st->line) == st->line_fp))
		st->route = 0; // another request line: hashed anew if it is tallied
	fill_meta(&st->req, sk, dir, size, now(tp));
	st->req.captured = n;
	if (dir == DIR_SENT && !st->who)
		name(sk, st);
	set_sock(st, bs, tp);
	if (state == LONE)
		output(st);
	else
		st->state = PENDING;
}

static __always_inline void on_response(struct bpf_sock *bs, struct tcp_sock *tp, __u8 dir, __u32 seq, __u32 size,
					const struct peek *p)
{
	struct sock *sk = (struct sock *)bs;
	struct http_sock *st = bpf_sk_storage_get(&socks, sk, 0, 0);
	if (st && repeated(st, dir, seq))
		return;
	if (!st || st->state != PENDING || st->req.dir == dir) {
		emit_response(sk, dir, size, p);
		return;
	}
	if (p->b[9] == '1') // 100 Continue and friends: the final answer follows
		return;
	__u64 end = now(tp);
	if (end < st->req.ts_ns) // clocks read on two CPUs
		end = st->req.ts_ns;
	complete(sk, st, p->b, HEAD, end);
	st->state = IDLE;
}

static __always_inline int on_skb(struct __sk_buff *skb, __u8 dir)
{
	__u32 off, seq;
	if (!segment(skb, &off, &seq) || skb->len < off + HEAD)
		return 1; // no payload, or too little to start a message
	__u32 zero = 0;
	struct peek *p = bpf_map_lookup_elem(&peeks, &zero);
	if (!p || bpf_skb_load_bytes(skb, off, p->b, HEAD))
		return 1;
	p->n = HEAD;
	__u8 kind = classify(p->b);
	if (!kind)
		return 1;
	__u32 size = skb->len - off;
	if (floor_only) {
		if (kind == HTTP_REQUEST) // what on_request loads
			load_request(skb, off, size, p->b);
		return 1;
	}
	// The packet's socket as the context gives it, read in place: its state
	// tells a full socket (a listener's handshake's last segment, a request
	// or time-wait socket's, carries no exchange of its own), and socket
	// storage takes it as it is. Only egress asks the kernel for the TCP
	// socket (bpf_skc_to_tcp_sock, ~4 ns), for its clock.
	struct bpf_sock *bs = skb->sk;
	if (!bs)
		return 1;
	__u32 state = bs->state;
	if (state == TCP_LISTEN || state == TCP_TIME_WAIT || state == TCP_NEW_SYN_RECV)
		return 1;
	struct tcp_sock *tp = 0;
	if (dir == DIR_SENT && !(tp = bpf_skc_to_tcp_sock(bs)))
		return 1;
	if (kind == HTTP_REQUEST)
		on_request(skb, bs, tp, dir, seq, off, size);
	else
		on_response(bs, tp, dir, seq, size, p);
	return 1;
}

SEC("cgroup_skb/egress")
int http_egress(struct __sk_buff *skb) { return on_skb(skb, DIR_SENT); }

SEC("cgroup_skb/ingress")
int http_ingress(struct __sk_buff *skb) { return on_skb(skb, DIR_RECEIVED); }

// A connect moves its socket to SYN_SENT in the caller's context: the
// socket's owner. A request still waiting when its socket closes went
// unanswered.
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(http_state, struct sock *sk, int oldstate, int newstate)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return 0;
	if (newstate == TCP_SYN_SENT) {
		struct owner *o = bpf_sk_storage_get(&owners, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (o) {
			o->who = bpf_get_current_pid_tgid();
			bpf_get_current_comm(&o->comm, sizeof(o->comm));
		}
		return 0;
	}
	if (newstate != TCP_CLOSE)
		return 0;
	struct http_sock *st = bpf_sk_storage_get(&socks, sk, 0, 0);
	if (st)
		on_close(sk, st);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
