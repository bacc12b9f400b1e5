// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// DNS queries and responses of clients, from the syscall tracepoints. A
// client sends a query to port 53 and reads the response on the same
// socket, so:
//   - sends look at their first bytes before anything else: only a buffer
//     starting with a standard query header (one question, no answers) goes
//     on to the fd -> socket walk and the port check;
//   - a query sent remembers its (process, fd), and only reads on such an fd
//     are followed to their exit, where the bytes must be a response from
//     port 53 on the same socket.
// Everything else costs one header read (sends) or one hash lookup
// (receives). One record per DNS message, with its first 512 bytes.
#include "user.h"
#include "fd.h"

#define BATCH 4     // messages of one sendmmsg/recvmmsg looked at (glibc sends 2)

// A socket that sent a query, keyed by (tgid << 32 | fd): its reads are
// the only ones followed.
struct dns_sock {
	__u64 sk;
	struct peer server; // where the last query went (unconnected sockets)
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 8192);
	__type(key, __u64);
	__type(value, struct dns_sock);
} dns_socks SEC(".maps");

// When each process last sent a query, by the low bits of its pid (a
// process sharing the slot only costs the lookup below): reads of processes
// that sent none lately end at one array load, without a hash lookup. A
// response follows its query within seconds, so a minute loses nothing.
#define RECENT_SLOTS 65536
#define RECENT_NS (60ULL * 1000000000)

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, RECENT_SLOTS);
	__type(key, __u32);
	__type(value, __u64);
} recent SEC(".maps");

static __always_inline bool sent_lately(__u64 pid_tgid)
{
	__u32 slot = (pid_tgid >> 32) & (RECENT_SLOTS - 1);
	__u64 *at = bpf_map_lookup_elem(&recent, &slot);
	if (!at)
		return false;
	__u64 t = *(volatile __u64 *)at;
	if (!t)
		return false;
	// Another thread may mark the slot after the clock was read here.
	__u64 now = bpf_ktime_get_ns();
	return now < t || now - t < RECENT_NS;
}

// Whether the slot ever saw a query: reads followed at their entry must be
// ended at their exit however long they blocked.
static __always_inline bool ever_sent(__u64 pid_tgid)
{
	__u32 slot = (pid_tgid >> 32) & (RECENT_SLOTS - 1);
	__u64 *at = bpf_map_lookup_elem(&recent, &slot);
	return at && *at;
}

static __always_inline void mark_sent(__u64 pid_tgid)
{
	__u32 slot = (pid_tgid >> 32) & (RECENT_SLOTS - 1);
	__u64 *at = bpf_map_lookup_elem(&recent, &slot);
	if (at)
		*at = bpf_ktime_get_ns();
}

// A read on such a socket, from the syscall's entry to its exit.
struct pending_read {
	__u64 arg;  // buffer, iovec, msghdr or mmsghdr array
	__u64 addr;    // recvfrom: where the sender's address goes
	__u64 addrlen; // recvfrom: its length, 0 when the kernel gave none
	__u64 key;  // dns_socks key
	__u32 vlen; // recvmmsg
	__u8 how;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, __u64);
	__type(value, struct pending_read);
} reads SEC(".maps");

// The UDP or TCP socket behind fd of the current task, or 0.
static __always_inline struct sock *inet_sock_of(int fd)
{
	struct sock *sk = inet_sock_of_fd(fd);
	if (!sk)
		return 0;
	__u16 proto = BPF_CORE_READ(sk, sk_protocol);
	return proto == IPPROTO_UDP || proto == IPPROTO_TCP ? sk : 0;
}

// A send on a socket with no local port yet: the kernel binds it during
// the call, so the query is recorded at the call's exit, with its port.
struct pending_send {
	__u64 fd, arg, count, name;
	__u8 how;
};

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u64);
	__type(value, struct pending_send);
} sends SEC(".maps");

// One message a send moves: buf of len bytes, to the sockaddr at name (or
// the connected peer). *skp caches the fd's socket across a sendmmsg batch;
// *later says the socket is unbound and the send must be looked at again
// at its exit.
static __always_inline void on_send_msg(int fd, __u64 buf, __u64 len, __u64 name, struct sock **skp, bool *later)
{
	__u8 h[HDR + 2] = {};
	if (!buf || len < HDR + 5 || len > 65535 + 2 || bpf_probe_read_user(h, sizeof(h), (void *)buf))
		return;
	// TCP carries a two-byte length first.
	bool plain = is_query(h);
	bool prefixed = be16(h) == len - 2 && is_query(h + 2);
	if (!plain && !prefixed)
		return;
	struct sock *sk = *skp;
	if (!sk) {
		sk = inet_sock_of(fd);
		if (!sk)
			return;
		*skp = sk;
	}
	struct peer server = {};
	if (!read_sockaddr(name, &server))
		sock_peer(sk, &server);
	if (server.port != DNS_PORT)
		return;
	if (later && BPF_CORE_READ(sk, __sk_common.skc_num) == 0) {
		*later = true;
		return;
	}
	__u32 skip = 0;
	if (BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP) {
		if (prefixed)
			skip = 2;
	} else if (!plain) {
		return;
	}
	__u64 id = bpf_get_current_pid_tgid();
	__u64 key = id >> 32 << 32 | (__u32)fd;
	struct dns_sock ds = {.sk = (__u64)sk, .server = server};
	bpf_map_update_elem(&dns_socks, &key, &ds, BPF_ANY);
	mark_sent(id);
	emit(sk, DNS_QUERY, &server, buf + skip, len - skip, len - skip);
}

// on_send looks at a send's messages; at_exit: the second look, after the
// kernel bound the socket.
static __always_inline int on_send(__u64 fd, __u64 arg, __u64 count, __u64 name, __u8 how, bool at_exit)
{
	struct sock *sk = 0;
	bool unbound = false;
	bool *later = at_exit ? 0 : &unbound;
	__u64 len = count, prefix = 0; // the length counts the message alone here
	switch (how) {
	case BUF_PLAIN:
		on_send_msg(fd, arg, count, name, &sk, later);
		break;
	case BUF_IOVEC: {
		__u64 buf = iov_buf(arg, count, &len, &prefix);
		on_send_msg(fd, buf, len, 0, &sk, later);
		break;
	}
	case BUF_MSGHDR: {
		struct user_msghdr msg = {};
		if (bpf_probe_read_user(&msg, sizeof(msg), (void *)arg))
			return 0;
		__u64 buf = iov_buf((__u64)msg.msg_iov, msg.msg_iovlen, &len, &prefix);
		on_send_msg(fd, buf, len, (__u64)msg.msg_name, &sk, later);
		break;
	}
	case BUF_MMSG:
		for (int i = 0; i < BATCH; i++) {
			if (i >= count)
				break;
			struct user_msghdr msg = {};
			if (bpf_probe_read_user(&msg, sizeof(msg), (void *)(arg + i * sizeof(struct mmsghdr))))
				break;
			__u64 buf = iov_buf((__u64)msg.msg_iov, msg.msg_iovlen, &len, &prefix);
			on_send_msg(fd, buf, len, (__u64)msg.msg_name, &sk, later);
		}
		break;
	}
	if (unbound) {
		__u64 id = bpf_get_current_pid_tgid();
		struct pending_send p = {.fd = fd, .arg = arg, .count = count, .name = name, .how = how};
		bpf_map_update_elem(&sends, &id, &p, BPF_ANY);
	}
	return 0;
}

static __always_inline int on_send_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	struct pending_send *pp = bpf_map_lookup_elem(&sends, &id);
	if (!pp)
		return 0;
	struct pending_send p = *pp;
	bpf_map_delete_elem(&sends, &id);
	if (ret <= 0)
		return 0;
	if (p.how == BUF_MMSG) // ret messages went
		p.count = ret;
	return on_send(p.fd, p.arg, p.count, p.name, p.how, true);
}

// Receives: follow only sockets that sent a query.
static __always_inline int on_recv_enter(__u64 fd, __u64 arg, __u64 addr, __u64 addrlen, __u64 vlen, __u8 how)
{
	__u64 id = bpf_get_current_pid_tgid();
	if (!sent_lately(id))
		return 0;
	__u64 key = id >> 32 << 32 | (__u32)fd;
	if (!bpf_map_lookup_elem(&dns_socks, &key))
		return 0;
	struct pending_read p = {.arg = arg, .addr = addr, .addrlen = addrlen, .key = key, .vlen = vlen, .how = how};
	bpf_map_update_elem(&reads, &id, &p, BPF_ANY);
	return 0;
}

// One message a receive moved: buf of len bytes from the sockaddr at name.
static __always_inline void on_recv_msg(struct sock *sk, const struct dns_sock *ds, __u64 buf, __u64 len, __u64 name)
{
	__u8 h[HDR + 2] = {};
	if (!buf || len < HDR + 5 || bpf_probe_read_user(h, sizeof(h), (void *)buf))
		return;
	__u32 skip = 0, size = len;
	if (BPF_CORE_READ(sk, sk_protocol) == IPPROTO_TCP && be16(h) >= HDR && is_response(h + 2)) {
		// The length prefix came with the message (or its start).
		skip = 2;
		size = be16(h);
	} else if (!is_response(h)) {
		return;
	}
	struct peer server = {};
	if (!read_sockaddr(name, &server)) {
		sock_peer(sk, &server);
		if (server.port == 0) // unconnected, sender not asked for: where the query went
			server = ds->server;
	}
	if (server.port != DNS_PORT)
		return;
	emit(sk, DNS_RESPONSE, &server, buf + skip, len - skip, size);
}

static __always_inline int on_recv_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	// No read can be pending for a process that never sent a query. (A
	// slot marked by another process only costs the lookup.)
	if (!ever_sent(id))
		return 0;
	struct pending_read *pp = bpf_map_lookup_elem(&reads, &id);
	if (!pp)
		return 0;
	struct pending_read p = *pp;
	bpf_map_delete_elem(&reads, &id);
	if (ret <= 0)
		return 0;
	struct dns_sock *dsp = bpf_map_lookup_elem(&dns_socks, &p.key);
	if (!dsp)
		return 0;
	struct dns_sock ds = *dsp;
	// The fd may have been closed and reused since the query.
	struct sock *sk = inet_sock_of((__u32)p.key);
	if ((__u64)sk != ds.sk) {
		bpf_map_delete_elem(&dns_socks, &p.key);
		return 0;
	}
	__u64 len = ret;
	switch (p.how) {
	case BUF_PLAIN: {
		// A connected TCP socket leaves the address alone: trust it only
		// if the kernel said how long it is.
		int alen = 0;
		if (p.addr && p.addrlen)
			bpf_probe_read_user(&alen, sizeof(alen), (void *)p.addrlen);
		on_recv_msg(sk, &ds, p.arg, len, alen > 0 ? p.addr : 0);
		break;
	}
	case BUF_IOVEC: {
		struct iovec iov = {};
		if (bpf_probe_read_user(&iov, sizeof(iov), (void *)p.arg))
			return 0;
		on_recv_msg(sk, &ds, (__u64)iov.iov_base, iov.iov_len < len ? iov.iov_len : len, 0);
		break;
	}
	case BUF_MSGHDR: {
		struct user_msghdr msg = {};
		struct iovec iov = {};
		if (bpf_probe_read_user(&msg, sizeof(msg), (void *)p.arg) ||
		    bpf_probe_read_user(&iov, sizeof(iov), (void *)msg.msg_iov))
			return 0;
		__u64 name = msg.msg_namelen > 0 ? (__u64)msg.msg_name : 0;
		on_recv_msg(sk, &ds, (__u64)iov.iov_base, iov.iov_len < len ? iov.iov_len : len, name);
		break;
	}
	case BUF_MMSG: // ret is the number of messages; each says its length
		for (int i = 0; i < BATCH; i++) {
			if (i >= ret || i >= p.vlen)
				break;
			struct mmsghdr mm = {};
			struct iovec iov = {};
			if (bpf_probe_read_user(&mm, sizeof(mm), (void *)(p.arg + i * sizeof(struct mmsghdr))) ||
			    bpf_probe_read_user(&iov, sizeof(iov), (void *)mm.msg_hdr.msg_iov))
				break;
			__u64 n = mm.msg_len < iov.iov_len ? mm.msg_len : iov.iov_len;
			__u64 name = mm.msg_hdr.msg_namelen > 0 ? (__u64)mm.msg_hdr.msg_name : 0;
			on_recv_msg(sk, &ds, (__u64)iov.iov_base, n, name);
		}
		break;
	}
	return 0;
}

#define ARGS(ctx) ((struct trace_event_raw_sys_enter *)ctx)->args
#define RET(ctx) ((struct trace_event_raw_sys_exit *)ctx)->ret

SEC("tracepoint/syscalls/sys_enter_write")
int enter_write(void *ctx) { return on_send(ARGS(ctx)[0], ARGS(ctx)[1], ARGS(ctx)[2], 0, BUF_PLAIN, false); }
SEC("tracepoint/syscalls/sys_enter_writev")
int enter_writev(void *ctx) { return on_send(ARGS(ctx)[0], ARGS(ctx)[1], ARGS(ctx)[2], 0, BUF_IOVEC, false); }
SEC("tracepoint/syscalls/sys_enter_sendto")
int enter_sendto(void *ctx) { return on_send(ARGS(ctx)[0], ARGS(ctx)[1], ARGS(ctx)[2], ARGS(ctx)[4], BUF_PLAIN, false); }
SEC("tracepoint/syscalls/sys_enter_sendmsg")
int enter_sendmsg(void *ctx) { return on_send(ARGS(ctx)[0], ARGS(ctx)[1], 0, 0, BUF_MSGHDR, false); }
SEC("tracepoint/syscalls/sys_enter_sendmmsg")
int enter_sendmmsg(void *ctx) { return on_send(ARGS(ctx)[0], ARGS(ctx)[1], ARGS(ctx)[2], 0, BUF_MMSG, false); }

SEC("tracepoint/syscalls/sys_exit_sendto")
int exit_sendto(void *ctx) { return on_send_exit(RET(ctx)); }
SEC("tracepoint/syscalls/sys_exit_sendmsg")
int exit_sendmsg(void *ctx) { return on_send_exit(RET(ctx)); }
SEC("tracepoint/syscalls/sys_exit_sendmmsg")
int exit_sendmmsg(void *ctx) { return on_send_exit(RET(ctx)); }

SEC("tracepoint/syscalls/sys_enter_read")
int enter_read(void *ctx) { return on_recv_enter(ARGS(ctx)[0], ARGS(ctx)[1], 0, 0, 0, BUF_PLAIN); }
SEC("tracepoint/syscalls/sys_enter_readv")
int enter_readv(void *ctx) { return on_recv_enter(ARGS(ctx)[0], ARGS(ctx)[1], 0, 0, 0, BUF_IOVEC); }
SEC("tracepoint/syscalls/sys_enter_recvfrom")
int enter_recvfrom(void *ctx) { return on_recv_enter(ARGS(ctx)[0], ARGS(ctx)[1], ARGS(ctx)[4], ARGS(ctx)[5], 0, BUF_PLAIN); }
SEC("tracepoint/syscalls/sys_enter_recvmsg")
int enter_recvmsg(void *ctx) { return on_recv_enter(ARGS(ctx)[0], ARGS(ctx)[1], 0, 0, 0, BUF_MSGHDR); }
SEC("tracepoint/syscalls/sys_enter_recvmmsg")
int enter_recvmmsg(void *ctx) { return on_recv_enter(ARGS(ctx)[0], ARGS(ctx)[1], 0, 0, ARGS(ctx)[2], BUF_MMSG); }

SEC("tracepoint/syscalls/sys_exit_read")
int exit_read(void *ctx) { return on_recv_exit(RET(ctx)); }
SEC("tracepoint/syscalls/sys_exit_readv")
int exit_readv(void *ctx) { return on_recv_exit(RET(ctx)); }
SEC("tracepoint/syscalls/sys_exit_recvfrom")
int exit_recvfrom(void *ctx) { return on_recv_exit(RET(ctx)); }
SEC("tracepoint/syscalls/sys_exit_recvmsg")
int exit_recvmsg(void *ctx) { return on_recv_exit(RET(ctx)); }
SEC("tracepoint/syscalls/sys_exit_recvmmsg")
int exit_recvmmsg(void *ctx) { return on_recv_exit(RET(ctx)); }

char LICENSE[] SEC("license") = "Dual BSD/GPL";
