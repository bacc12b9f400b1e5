// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// HTTP/1.x on sockets from the syscall tracepoints, for kernels without the
// sock_*_length tracepoints sock.c uses (before 6.3). The kernel keeps only
// the calls whose first bytes start a request or a response on a TCP
// socket and copies their first bytes; everything else (file I/O, bodies,
// other protocols) ends here, so the agent sees one record per request and
// one per response, never one per syscall.
#include "http.h"
#include "fd.h"

// A read's buffer, kept from the syscall's entry to its exit.
struct pending_read {
	__u64 buf;
	__u64 sk;
	__u8 how;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u64);
	__type(value, struct pending_read);
} reads SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct carry);
} carries SEC(".maps");

static __always_inline void fill_sock(struct http_record *r, struct sock *sk)
{
	r->family = BPF_CORE_READ(sk, __sk_common.skc_family);
	r->netns = BPF_CORE_READ(sk, __sk_common.skc_net.net, ns.inum);
	r->sport = BPF_CORE_READ(sk, __sk_common.skc_num);
	r->dport = bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
	if (r->family == AF_INET6) {
		BPF_CORE_READ_INTO(&r->saddr, sk, __sk_common.skc_v6_rcv_saddr.in6_u.u6_addr8);
		BPF_CORE_READ_INTO(&r->daddr, sk, __sk_common.skc_v6_daddr.in6_u.u6_addr8);
	} else {
		__builtin_memset(r->saddr, 0, sizeof(r->saddr));
		__builtin_memset(r->daddr, 0, sizeof(r->daddr));
		BPF_CORE_READ_INTO((__u32 *)r->saddr, sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)r->daddr, sk, __sk_common.skc_daddr);
	}
}

// The TCP socket behind fd of the current task, or 0 for anything else.
static __always_inline struct sock *tcp_sock_of(int fd)
{
	struct sock *sk = inet_sock_of_fd(fd);
	return sk && BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP ? sk : 0;
}

// Sends: the data is in the buffer at entry.
static __always_inline int on_send(__u64 fd, __u64 arg, __u64 count, __u8 how)
{
	__u64 len = count;
	__u64 buf = first_buf(arg, how, &len);
	if (!buf || len < 8)
		return 0;
	struct peek *p = peek(buf, len, 0);
	if (!p)
		return 0;
	__u8 kind = classify(p->b);
	if (!kind)
		return 0;
	struct sock *sk = tcp_sock_of(fd);
	if (!sk)
		return 0;
	if (kind == HTTP_REQUEST)
		emit_request(sk, DIR_SENT, len, p);
	else
		emit_response(sk, DIR_SENT, len, p);
	return 0;
}

// Receives: remember the buffer of socket reads, look at it at exit.
static __always_inline int on_recv_enter(__u64 fd, __u64 arg, __u8 how)
{
	struct sock *sk = tcp_sock_of(fd);
	if (!sk)
		return 0;
	__u64 id = bpf_get_current_pid_tgid();
	struct pending_read p = {.buf = arg, .sk = (__u64)sk, .how = how};
	bpf_map_update_elem(&reads, &id, &p, BPF_ANY);
	return 0;
}

static __always_inline int on_recv_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pending_read *pending = bpf_map_lookup_elem(&reads, &id);
	if (!pending)
		return 0;
	struct pending_read pr = *pending;
	bpf_map_delete_elem(&reads, &id);
	if (ret <= 0)
		return 0;
	__u64 len = ret;
	__u64 buf = first_buf(pr.buf, pr.how, &len);
	if (!buf)
		return 0;
	if (len > (__u64)ret)
		len = ret;

	struct carry *c = bpf_map_lookup_elem(&carries, &pr.sk);
	struct carry cur = {};
	if (c)
		__builtin_memcpy(&cur, c, sizeof(cur));
	struct peek *p = peek(buf, len, &cur);
	if (!p)
		return 0;
	bool skip = false;
	if (short_read(p, &cur, &skip)) {
		if (!skip)
			bpf_map_update_elem(&carries, &pr.sk, &cur, BPF_ANY);
		return 0;
	}
	if (c)
		bpf_map_delete_elem(&carries, &pr.sk);
	__u8 kind = classify(p->b);
	if (kind == HTTP_REQUEST)
		emit_request((struct sock *)pr.sk, DIR_RECEIVED, ret, p);
	else if (kind == HTTP_RESPONSE)
		emit_response((struct sock *)pr.sk, DIR_RECEIVED, ret, p);
	return 0;
}

#define ARGS(ctx) ((struct trace_event_raw_sys_enter *)ctx)->args
#define RET(ctx) ((struct trace_event_raw_sys_exit *)ctx)->ret

SEC("tracepoint/syscalls/sys_enter_write")
int enter_write(void *ctx) { return on_send(ARGS(ctx)[0], ARGS(ctx)[1], ARGS(ctx)[2], BUF_PLAIN); }
SEC("tracepoint/syscalls/sys_enter_sendto")
int enter_sendto(void *ctx) { return on_send(ARGS(ctx)[0], ARGS(ctx)[1], ARGS(ctx)[2], BUF_PLAIN); }
SEC("tracepoint/syscalls/sys_enter_writev")
int enter_writev(void *ctx) { return on_send(ARGS(ctx)[0], ARGS(ctx)[1], ~0ULL, BUF_IOVEC); }
SEC("tracepoint/syscalls/sys_enter_sendmsg")
int enter_sendmsg(void *ctx) { return on_send(ARGS(ctx)[0], ARGS(ctx)[1], ~0ULL, BUF_MSGHDR); }

SEC("tracepoint/syscalls/sys_enter_read")
int enter_read(void *ctx) { return on_recv_enter(ARGS(ctx)[0], ARGS(ctx)[1], BUF_PLAIN); }
SEC("tracepoint/syscalls/sys_enter_recvfrom")
int enter_recvfrom(void *ctx) { return on_recv_enter(ARGS(ctx)[0], ARGS(ctx)[1], BUF_PLAIN); }
SEC("tracepoint/syscalls/sys_enter_readv")
int enter_readv(void *ctx) { return on_recv_enter(ARGS(ctx)[0], ARGS(ctx)[1], BUF_IOVEC); }
SEC("tracepoint/syscalls/sys_enter_recvmsg")
int enter_recvmsg(void *ctx) { return on_recv_enter(ARGS(ctx)[0], ARGS(ctx)[1], BUF_MSGHDR); }

SEC("tracepoint/syscalls/sys_exit_read")
int exit_read(void *ctx) { return on_recv_exit(RET(ctx)); }
SEC("tracepoint/syscalls/sys_exit_recvfrom")
int exit_recvfrom(void *ctx) { return on_recv_exit(RET(ctx)); }
SEC("tracepoint/syscalls/sys_exit_readv")
int exit_readv(void *ctx) { return on_recv_exit(RET(ctx)); }
SEC("tracepoint/syscalls/sys_exit_recvmsg")
int exit_recvmsg(void *ctx) { return on_recv_exit(RET(ctx)); }

char LICENSE[] SEC("license") = "Dual BSD/GPL";
