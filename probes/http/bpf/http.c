// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// HTTP/1.x on sockets from the syscall tracepoints. The kernel keeps only
// the calls whose first bytes start a request or a response on a TCP
// socket and copies their first bytes; everything else (file I/O, bodies,
// other protocols) ends here, so the agent sees one record per request and
// one per response, never one per syscall.
#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_core_read.h"
#include "bpf_endian.h"
#include "ring.h"

#define AF_INET 2
#define AF_INET6 10
#define IPPROTO_TCP 6
#define S_IFMT 00170000
#define S_IFSOCK 0140000
#define PREFIX 192
#define RESPONSE_PREFIX 16 // "HTTP/1.1 200 OK\r" is all the agent reads of a response

// Kinds continue after the TCP ones (probes/tcp/bpf/tcp.h): one ring.
enum { HTTP_REQUEST = 32, HTTP_RESPONSE = 33 };
enum { DIR_SENT = 0, DIR_RECEIVED = 1 };
enum { BUF_PLAIN = 0, BUF_IOVEC = 1, BUF_MSGHDR = 2 };

struct http_record {
	__u8 kind;      // first, as in every record of the ring
	__u8 dir;
	__u16 family;
	__u32 netns;
	__u64 ts_ns;
	__u64 sk;
	__u32 pid;
	__u32 size;     // bytes this call moved (received) or asked to move (sent)
	__u32 captured; // bytes of data that are valid
	__u16 sport;    // local port
	__u16 dport;    // remote port
	__u8 saddr[16];
	__u8 daddr[16];
	char comm[16];
	__u8 data[PREFIX];
};

const struct http_record *unused_http_record __attribute__((unused));

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

// The first bytes of a socket's stream when a read took fewer than eight:
// Go's HTTP server, for one, reads a single byte to watch for a closing
// client, and the request line continues in the next read.
struct carry {
	__u8 n;
	__u8 b[7];
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct carry);
} carries SEC(".maps");

__u64 lost = 0;

// The TCP socket behind fd of the current task, or 0 for anything else.
static __always_inline struct sock *tcp_sock_of(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	if (fd < 0 || fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	struct file **fds = BPF_CORE_READ(fdt, fd);
	struct file *f = 0;
	bpf_probe_read_kernel(&f, sizeof(f), &fds[fd]);
	if (!f)
		return 0;
	umode_t mode = BPF_CORE_READ(f, f_inode, i_mode);
	if ((mode & S_IFMT) != S_IFSOCK)
		return 0;
	struct socket *s = BPF_CORE_READ(f, private_data);
	struct sock *sk = BPF_CORE_READ(s, sk);
	if (!sk || BPF_CORE_READ(sk, sk_protocol) != IPPROTO_TCP)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != AF_INET && family != AF_INET6)
		return 0;
	return sk;
}

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
// or the first iovec of a msghdr.
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
		*len = iov.iov_len;
		return (__u64)iov.iov_base;
	}
	return arg;
}

static __always_inline void emit(struct sock *sk, __u8 kind, __u8 dir, __u64 buf, __u64 avail, __u64 size,
				 const struct carry *c)
{
	struct http_record *r = bpf_ringbuf_reserve(&events, sizeof(*r), 0);
	if (!r) {
		__sync_fetch_and_add(&lost, 1);
		return;
	}
	r->ts_ns = bpf_ktime_get_ns();
	r->sk = (__u64)sk;
	r->kind = kind;
	r->dir = dir;
	r->size = size;
	// The request named the socket already: a status line is all a
	// response adds.
	__u64 limit = PREFIX;
	if (kind == HTTP_RESPONSE) {
		limit = RESPONSE_PREFIX;
		r->family = 0;
		r->pid = 0;
		goto data;
	}
	r->pid = bpf_get_current_pid_tgid() >> 32;
	bpf_get_current_comm(&r->comm, sizeof(r->comm));
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
data:
	if (avail > limit)
		avail = limit;
	if (c) {
		__u8 k = c->n & 7;
		for (int i = 0; i < 7; i++)
			if (i < k)
				r->data[i] = c->b[i];
		__u32 n = avail < PREFIX - 8 ? avail : PREFIX - 8;
		r->captured = k + n;
		if (bpf_probe_read_user(r->data + k, n, (void *)buf))
			r->captured = k;
	} else {
		__u32 n = avail < PREFIX ? avail : PREFIX;
		r->captured = n;
		if (bpf_probe_read_user(r->data, n, (void *)buf))
			r->captured = 0;
	}
	ring_submit(r, false);
}

// Sends: the data is in the buffer at entry.
static __always_inline int on_send(__u64 fd, __u64 arg, __u64 count, __u8 how)
{
	__u64 len = count;
	__u64 buf = first_buf(arg, how, &len);
	__u8 head[8] = {};
	if (!buf || len < 8 || bpf_probe_read_user(head, sizeof(head), (void *)buf))
		return 0;
	__u8 kind = classify(head);
	if (!kind)
		return 0;
	struct sock *sk = tcp_sock_of(fd);
	if (sk)
		emit(sk, kind, DIR_SENT, buf, len, len, 0);
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
	struct pending_read *p = bpf_map_lookup_elem(&reads, &id);
	if (!p)
		return 0;
	struct pending_read pr = *p;
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
	__u32 k = cur.n & 7;
	// joined = the carried bytes, then this read's first bytes.
	__u8 joined[16] = {};
	__builtin_memcpy(joined, cur.b, 7);
	if (bpf_probe_read_user(joined + k, 8, (void *)buf))
		return 0;
	if (k + len < 8) { // still too short to tell: keep the bytes for the next read
		if (k == 0 && !classify_start(joined[0]))
			return 0;
		cur.n = k + len;
		__builtin_memcpy(cur.b, joined, 7);
		bpf_map_update_elem(&carries, &pr.sk, &cur, BPF_ANY);
		return 0;
	}
	if (c)
		bpf_map_delete_elem(&carries, &pr.sk);
	__u8 kind = classify(joined);
	if (kind)
		emit((struct sock *)pr.sk, kind, DIR_RECEIVED, buf, len, ret, k ? &cur : 0);
	return 0;
}

#define ARGS(ctx) ((struct trace_event_raw_sys_enter *)ctx)->args
#define RET(ctx) ((struct trace_event_raw_sys_exit *)ctx)->ret

SEC("tracepoint/syscalls/sys_enter_write")
int enter_write(void *ctx) { return on_send(ARGS(ctx)[0], ARGS(ctx)[1], ARGS(ctx)[2], BUF_PLAIN); }
SEC("tracepoint/syscalls/sys_enter_sendto")
int enter_sendto(void *ctx) { return on_send(ARGS(ctx)[0], ARGS(ctx)[1], ARGS(ctx)[2], BUF_PLAIN); }
SEC("tracepoint/syscalls/sys_enter_writev")
int enter_writev(void *ctx) { return on_send(ARGS(ctx)[0], ARGS(ctx)[1], 0, BUF_IOVEC); }
SEC("tracepoint/syscalls/sys_enter_sendmsg")
int enter_sendmsg(void *ctx) { return on_send(ARGS(ctx)[0], ARGS(ctx)[1], 0, BUF_MSGHDR); }

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
