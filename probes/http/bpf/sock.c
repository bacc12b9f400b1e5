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
#include "http.h"
#include "bpf_tracing.h"

#define MSG_PEEK 2
#define PF_KTHREAD 0x00200000
#define TCP_CLOSE 7

// x86_64 syscall numbers of the calls whose buffer can be found.
#define NR_read 0
#define NR_write 1
#define NR_readv 19
#define NR_writev 20
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47

enum { IDLE = 0, PENDING = 1, LONE = 2 };

struct http_sock {
	struct http_record req; // the request waiting for its response (PENDING)
	struct carry carry;
	__u8 state;
};

struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct http_sock);
} socks SEC(".maps");

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
	struct task_struct *task = bpf_get_current_task_btf();
	if (task->flags & PF_KTHREAD)
		return 0;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
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

// on_request and on_response take the socket's storage when the caller
// looked it up already (NULL: look it up here).
static __always_inline void on_request(struct sock *sk, struct http_sock *st, __u8 dir, __u64 buf, __u64 len,
				       __u32 size, const struct carry *c)
{
	if (!st)
		st = bpf_sk_storage_get(&socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
	if (!st) {
		emit_request(sk, dir, buf, len, size, c);
		return;
	}
	switch (st->state) {
	case IDLE:
		fill_request(&st->req, sk, dir, buf, len, size, c);
		st->state = PENDING;
		return;
	case PENDING: // pipelining: the agent pairs this socket from now on
		st->state = LONE;
		st->req.kind = HTTP_REQUEST;
		output(st);
		break;
	}
	emit_request(sk, dir, buf, len, size, c);
}

static __always_inline void on_response(struct sock *sk, struct http_sock *st, __u8 dir, __u64 buf, __u64 len,
					__u32 size)
{
	if (!st)
		st = bpf_sk_storage_get(&socks, sk, 0, 0);
	if (!st || st->state != PENDING || st->req.dir == dir) {
		emit_response(sk, dir, buf, len, size);
		return;
	}
	fill_head(&st->req, buf, len);
	if (st->req.head[9] == '1') // 100 Continue and friends: the final answer follows
		return;
	st->req.kind = HTTP_EXCHANGE;
	st->req.end_ns = bpf_ktime_get_ns();
	output(st);
	st->state = IDLE;
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(http_sent, struct sock *sk, int ret, int flags)
{
	if (ret < 8 || !app_tcp(sk))
		return 0;
	__u64 len = ret;
	__u64 buf = call_buf(&len);
	__u8 head[8];
	if (!buf || len < 8 || bpf_probe_read_user(head, sizeof(head), (void *)buf))
		return 0;
	switch (classify(head)) {
	case HTTP_REQUEST:
		on_request(sk, 0, DIR_SENT, buf, len, ret, 0);
		break;
	case HTTP_RESPONSE:
		on_response(sk, 0, DIR_SENT, buf, len, ret);
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
	struct http_sock *st = bpf_sk_storage_get(&socks, sk, 0, 0);
	struct carry cur = {};
	if (st)
		cur = st->carry;
	__u8 joined[16] = {};
	int k = join(&cur, buf, len, joined);
	if (k == JOIN_SKIP)
		return 0;
	if (k == JOIN_SHORT) {
		if (!st)
			st = bpf_sk_storage_get(&socks, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (st)
			st->carry = cur;
		return 0;
	}
	if (st && k)
		st->carry.n = 0;
	switch (classify(joined)) {
	case HTTP_REQUEST:
		on_request(sk, st, DIR_RECEIVED, buf, len, ret, k ? &cur : 0);
		break;
	case HTTP_RESPONSE:
		on_response(sk, st, DIR_RECEIVED, buf, len, ret);
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
	if (!st || st->state != PENDING)
		return 0;
	st->req.kind = HTTP_UNANSWERED;
	st->req.end_ns = bpf_ktime_get_ns();
	st->req.head_len = 0;
	output(st);
	st->state = IDLE;
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
