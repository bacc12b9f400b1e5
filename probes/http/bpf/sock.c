// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// HTTP/1.x on TCP sockets from the sock_send_length and sock_recv_length
// tracepoints (kernel 6.3+): they fire only for socket calls, after the
// data moved, with the socket in hand, so nothing else a process does pays
// for them. The call's user buffer comes from the syscall's own arguments.
//
// A request and its response are paired here, per socket, in socket-local
// storage: the agent gets one record per exchange on each end rather than
// one per request and one per response. A socket that pipelines (a second
// request before the first's response) turns to lone records for good and
// the agent pairs them; a request still waiting when its socket closes is
// sent as unanswered.
//
// The send hook fires when the call returns, after the data left: a client
// may read the response first (its sender preempted, or Go's client, whose
// reader runs on another thread). Such a response waits in the socket for
// the request whose bytes were in the socket before it was read (known by
// their TCP sequence numbers), and the two pair when the send hook comes.
//
// With tally on (no spans wanted), most exchanges are not sent at all: from
// its second exchange on, a socket counts them in a few slots (storage of
// their own, which a connection of one request never needs), one per
// (direction, method and route, status), as latency buckets. A slot's first
// exchange is sent whole, so the agent learns what the slot counts; the
// http_counts iterator moves the counts into the ring at each sweep, and
// the close moves the last ones. Exchanges that need their bytes still come
// whole: 5xx and unanswered (events), a socket's first, the first of each
// latency bucket per slot and sweep (exemplar candidates), and whatever
// fits no slot.
#include "pair.h"
#include "syscalls.h"
#include "bpf_tracing.h"

#define MSG_PEEK 2

// An application's TCP socket: not the kernel's own (NFS and the like run
// their sockets inside another task's call).
static __always_inline bool app_tcp(struct sock *sk)
{
	if (sk->sk_protocol != IPPROTO_TCP)
		return false;
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return false;
	struct socket *so = sk->sk_socket;
	return so && so->file;
}

// The user buffer of the current syscall, when it is one of the read/write
// families; 0 otherwise (io_uring, sendfile, kernel threads).
static __always_inline __u64 call_buf(__u64 *len)
{
	struct pt_regs *regs = syscall_regs();
	if (!regs)
		return 0;
	__u8 how;
	switch (regs->orig_ax) {
	case NR_read: case NR_write: case NR_recvfrom: case NR_sendto:
		how = BUF_PLAIN;
		break;
	case NR_readv: case NR_writev:
		how = BUF_IOVEC;
		break;
	case NR_recvmsg: case NR_sendmsg:
		how = BUF_MSGHDR;
		break;
	default:
		return 0;
	}
	return first_buf(regs->si, how, len);
}

// on_request and on_response take the socket's storage when the caller
// looked it up already (NULL: look it up here), and the call's first bytes.
// write_seq is the sequence number of the next byte the socket's user
// writes.
static __always_inline __u32 write_seq(struct sock *sk)
{
	struct tcp_sock *tp = bpf_skc_to_tcp_sock(sk);
	return tp ? tp->write_seq : 0;
}

// emit_early writes the socket's early response alone: it answered no
// request seen here.
static __always_inline void emit_early(struct sock *sk, struct http_sock *st)
{
	struct http_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&lost, 1);
		return;
	}
	r->kind = HTTP_RESPONSE;
	r->dir = DIR_RECEIVED;
	r->family = 0;
	r->pid = 0;
	r->ts_ns = st->early_ns;
	r->end_ns = 0;
	r->sk = (__u64)sk;
	r->size = st->early_size;
	r->captured = 0;
	r->slot = 0;
	r->cookie = 0;
	__builtin_memcpy(r->head, st->early_head, HEAD);
	r->head_len = st->early_len;
	ring_submit(r);
}

static __always_inline void on_request(struct sock *sk, struct http_sock *st, __u8 dir, __u32 size,
				       const struct peek *p)
{
	if (!st)
		st = bpf_sk_storage_get(&socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		emit_request(sk, dir, size, p);
		return;
	}
	switch (st->state) {
	case IDLE:
	case EARLY:
		if (tally && !(st->line && p->n >= st->line && same_line(st->req.data, p->b, st->line)))
			st->route = 0; // another request line: hashed anew if it is tallied
		fill_call(&st->req, sk, dir, size, p, bpf_ktime_get_ns());
		// The thread and the addresses are most often those of the
		// socket's last request: kept, they save the comm and address
		// copies (~40 ns). The ports catch a socket connected anew.
		__u64 who = bpf_get_current_pid_tgid();
		if (who != st->who || st->req.sport != sk->__sk_common.skc_num ||
		    st->req.dport != bpf_ntohs(sk->__sk_common.skc_dport)) {
			fill_who(&st->req, sk, who);
			st->who = who;
		}
		if (__sync_val_compare_and_swap(&st->state, IDLE, PENDING) != EARLY)
			return; // PENDING; or LONE, set meanwhile by another request
		// A response came before this send returned. It answers this
		// request if the request's first byte was in the socket when it
		// was read: the call wrote size bytes up to write_seq.
		if (dir == DIR_SENT && (__s32)(st->early_seq - (write_seq(sk) - size)) > 0) {
			// Its latency from the send's return (as every request's) is
			// none: the response beat it.
			st->req.ts_ns = st->early_ns;
			complete(sk, st, st->early_head, st->early_len, st->early_ns);
			st->state = IDLE;
			return;
		}
		emit_early(sk, st);
		st->state = PENDING;
		return;
	case PENDING: // pipelining: the agent pairs this socket from now on
		st->state = LONE;
		st->req.kind = HTTP_REQUEST;
		output(st);
		break;
	}
	emit_request(sk, dir, size, p);
}

static __always_inline void on_response(struct sock *sk, struct http_sock *st, __u8 dir, __u32 size,
					const struct peek *p)
{
	// Only a client's sends can return after their answer: a server's
	// request hook fires before its read returns the request.
	if (!st)
		st = bpf_sk_storage_get(&socks, sk, 0, dir == DIR_RECEIVED ? BPF_SK_STORAGE_GET_F_CREATE : 0);
	if (!st) {
		emit_response(sk, dir, size, p);
		return;
	}
	__u64 state = st->state;
	if (state == IDLE && dir == DIR_RECEIVED) {
		if (p->b[9] == '1') // an interim answer: the final one follows
			return;
		__builtin_memcpy(st->early_head, p->b, HEAD);
		st->early_len = p->n < HEAD ? p->n : HEAD;
		st->early_ns = bpf_ktime_get_ns();
		st->early_size = size;
		st->early_seq = write_seq(sk);
		state = __sync_val_compare_and_swap(&st->state, IDLE, EARLY);
		if (state == IDLE)
			return; // waits for its request's send
		// The request came meanwhile (PENDING): paired below.
	}
	if (state != PENDING || st->req.dir == dir) {
		emit_response(sk, dir, size, p);
		return;
	}
	if (p->b[9] == '1') // 100 Continue and friends: the final answer follows
		return;
	__u16 len = p->n < HEAD ? p->n : HEAD;
	complete(sk, st, p->b, len, bpf_ktime_get_ns());
	st->state = IDLE;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(http_sent, struct sock *sk, int ret, int flags)
{
	if (ret < 8 || !app_tcp(sk))
		return 0;
	__u64 len = ret;
	__u64 buf = call_buf(&len);
	if (!buf || len < 8)
		return 0;
	struct peek *p = peek(buf, len, 0);
	if (!p || floor_only)
		return 0;
	switch (classify(p->b)) {
	case HTTP_REQUEST:
		on_request(sk, 0, DIR_SENT, ret, p);
		break;
	case HTTP_RESPONSE:
		on_response(sk, 0, DIR_SENT, ret, p);
		break;
	}
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(http_received, struct sock *sk, int ret, int flags)
{
	if (ret <= 0 || (flags & MSG_PEEK) || !app_tcp(sk))
		return 0;
	__u64 len = ret;
	__u64 buf = call_buf(&len);
	if (!buf)
		return 0;
	if (floor_only) {
		peek(buf, len, 0);
		return 0;
	}
	struct http_sock *st = bpf_sk_storage_get(&socks, sk, 0, 0);
	struct carry cur = {};
	if (st)
		cur = st->carry;
	struct peek *p = peek(buf, len, &cur);
	if (!p)
		return 0;
	bool skip = false;
	if (short_read(p, &cur, &skip)) {
		if (skip)
			return 0;
		if (!st)
			st = bpf_sk_storage_get(&socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (st)
			st->carry = cur;
		return 0;
	}
	if (st && cur.n)
		st->carry.n = 0;
	switch (classify(p->b)) {
	case HTTP_REQUEST:
		on_request(sk, st, DIR_RECEIVED, ret, p);
		break;
	case HTTP_RESPONSE:
		on_response(sk, st, DIR_RECEIVED, ret, p);
		break;
	}
	return 0;
}

// A request still waiting when its socket closes went unanswered.
SEC("tp_btf/inet_sock_set_state")
int BPF_PROG(http_closed, struct sock *sk, int oldstate, int newstate)
{
	if (newstate != TCP_CLOSE || sk->sk_protocol != IPPROTO_TCP)
		return 0;
	struct http_sock *st = bpf_sk_storage_get(&socks, sk, 0, 0);
	if (!st)
		return 0;
	if (st->state == EARLY) { // its request was never seen
		emit_early(sk, st);
		st->state = IDLE;
	}
	on_close(sk, st);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
