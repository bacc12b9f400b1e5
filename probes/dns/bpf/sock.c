// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// DNS queries and responses of clients, from the sock_send_length and
// sock_recv_length tracepoints (Linux 6.3+). They fire for socket calls
// only, after the data moved, with the socket in hand: every call that is
// not UDP or TCP with port 53 at the other end ends at the socket's
// protocol and port, before anything is read. Only then is the message
// found, in the caller's memory, from the syscall's own arguments.
//
// What the hooks cannot see, and what stands in for it:
//   - an unconnected socket (musl, sendto) names its server per call: a
//     send's address is read from the call; a receive's is copied out by
//     the kernel after the hook, so a response is taken to come from where
//     the socket's last query went (kept in the socket's storage);
//   - sendmmsg and recvmmsg pass the hook once per message: which message
//     is counted per thread (see batch_index).
#include "user.h"
#include "syscalls.h"
#include "bpf_tracing.h"

#define MSG_PEEK 2
#define MAX_BATCH 1024 // UIO_MAXIOV: the most messages one call moves

// Where an unconnected socket's last query went; a socket without it is
// not followed when unconnected.
struct {
	__uint(type, BPF_MAP_TYPE_SK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct peer);
} servers SEC(".maps");

// A thread's place in a sendmmsg or recvmmsg: the array, the message the
// next hook is at, and the length the last one moved. The kernel writes
// each message's length into the array after its hook, so a hook that
// finds the previous message's length there continues the same call.
struct batch {
	__u64 array;
	__u32 next;
	__s32 last;
};

struct {
	__uint(type, BPF_MAP_TYPE_TASK_STORAGE);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, int);
	__type(value, struct batch);
} batches SEC(".maps");

// batch_index says which message of the array of vlen the hook is at,
// given what it moved (ret).
static __always_inline __u32 batch_index(__u64 array, __u32 vlen, long ret)
{
	struct batch *b =
		bpf_task_storage_get(&batches, bpf_get_current_task_btf(), 0, BPF_LOCAL_STORAGE_GET_F_CREATE);
	if (!b)
		return 0;
	__u32 i = 0;
	if (b->array == array && b->next > 0 && b->next < vlen && b->next < MAX_BATCH) {
		__u32 prev = 0;
		__u64 at = array + (b->next - 1) * sizeof(struct mmsghdr) + sizeof(struct user_msghdr) /* msg_len follows the header */;
		if (!bpf_probe_read_user(&prev, sizeof(prev), (void *)at) && (__s32)prev == b->last)
			i = b->next;
	}
	if (ret < 0 || i + 1 >= vlen) {
		b->array = 0;
	} else {
		b->array = array;
		b->next = i + 1;
		b->last = ret;
	}
	return i;
}

// The message a call moved: its first buffer, how many bytes of it the
// call moved, and the address the call names (sends only; 0: none).
struct found {
	__u64 buf, len, name;
};

// A msghdr's iovec array and, for a send, the address it names.
static __always_inline bool msghdr_at(__u64 at, bool send, struct found *m, __u64 *iov, __u64 *iovcnt)
{
	struct user_msghdr h = {};
	if (bpf_probe_read_user(&h, sizeof(h), (void *)at))
		return false;
	*iov = (__u64)h.msg_iov;
	*iovcnt = h.msg_iovlen;
	if (send && h.msg_name && h.msg_namelen > 0)
		m->name = (__u64)h.msg_name;
	return true;
}

// Whether the sockaddr at name is port 53 of an IP address: read before
// the buffer, so an unconnected socket's other sends stop sooner.
static __always_inline bool to_dns(__u64 name)
{
	struct {
		__u16 family, port;
	} a = {};
	if (!name || bpf_probe_read_user(&a, sizeof(a), (void *)name))
		return false;
	return (a.family == AF_INET || a.family == AF_INET6) && a.port == bpf_htons(DNS_PORT);
}

// this_call finds the message of the current call, which moved ret bytes;
// an unconnected socket's send only if it goes to port 53. False for calls
// that carry no buffer to find: io_uring, sendfile, the kernel's own
// sockets, 32-bit processes' calls (other numbers).
static __always_inline bool this_call(long ret, bool send, bool connected, struct found *m)
{
	struct pt_regs *regs = syscall_regs();
	if (!regs)
		return false;
	__u64 arg = regs->si, iov = 0, iovcnt = 0, prefix = 0;
	m->buf = 0;
	m->len = regs->dx; // the buffer's size, where the call has one
	m->name = 0;
	switch (regs->orig_ax) {
	case NR_read:
	case NR_write:
	case NR_recvfrom: // the sender's address is copied out after the hook
		m->buf = arg;
		break;
	case NR_sendto:
		m->buf = arg;
		m->name = regs->r8;
		break;
	case NR_readv:
	case NR_writev:
		iov = arg;
		iovcnt = regs->dx;
		break;
	case NR_sendmsg:
	case NR_recvmsg:
		if (!msghdr_at(arg, send, m, &iov, &iovcnt))
			return false;
		break;
	case NR_sendmmsg:
	case NR_recvmmsg: {
		__u32 i = batch_index(arg, regs->dx, ret);
		if (i >= MAX_BATCH || !msghdr_at(arg + i * sizeof(struct mmsghdr), send, m, &iov, &iovcnt))
			return false;
		break;
	}
	default:
		return false;
	}
	if (send && !connected && !to_dns(m->name))
		return false;
	if (iov)
		m->buf = iov_buf(iov, iovcnt, &m->len, &prefix);
	// No more than the call moved (a truncated datagram's ret is its
	// whole size), past a length prefix in a buffer of its own.
	__u64 moved = ret > (long)prefix ? ret - prefix : 0;
	if (m->len > moved)
		m->len = moved;
	return m->buf != 0;
}

// A client's socket: UDP or TCP over IP. *dns says its connected peer is
// port 53; false with an unconnected UDP socket (port 0), which names its
// server per call.
static __always_inline bool client_sock(struct sock *sk, bool *dns)
{
	__u16 proto = sk->sk_protocol;
	if (proto != IPPROTO_UDP && proto != IPPROTO_TCP)
		return false;
	__u16 family = sk->__sk_common.skc_family;
	if (family != AF_INET && family != AF_INET6)
		return false;
	__u16 dport = sk->__sk_common.skc_dport;
	*dns = dport == bpf_htons(DNS_PORT);
	return *dns || (dport == 0 && proto == IPPROTO_UDP);
}

SEC("tp_btf/sock_send_length")
int BPF_PROG(dns_sent, struct sock *sk, int ret, int flags)
{
	bool connected;
	// An unconnected socket on port 53 is a server's, answering.
	if (!client_sock(sk, &connected) || (!connected && sk->__sk_common.skc_num == DNS_PORT))
		return 0;
	// Every call is looked at, short or failed: it moves its thread's
	// place in a batch (batch_index).
	struct found m = {};
	if (!this_call(ret, true, connected, &m) || ret < HDR + 5)
		return 0;
	// The address the call names wins, as the kernel sends there.
	struct peer server = {};
	if (!read_sockaddr(m.name, &server)) {
		if (!connected)
			return 0;
		sock_peer(sk, &server);
	}
	if (server.port != DNS_PORT)
		return 0;
	__u8 h[HDR + 2] = {};
	if (m.len < HDR + 5 || m.len > 65535 + 2 || bpf_probe_read_user(h, sizeof(h), (void *)m.buf))
		return 0;
	// TCP carries a two-byte length first, written with the message or
	// alone before it.
	__u32 skip = 0;
	if (sk->sk_protocol == IPPROTO_TCP && be16(h) == m.len - 2 && is_query(h + 2))
		skip = 2;
	else if (!is_query(h))
		return 0;
	if (!connected) {
		struct peer *s = bpf_sk_storage_get(&servers, sk, 0, BPF_SK_STORAGE_GET_F_CREATE);
		if (s)
			*s = server;
	}
	emit(sk, DNS_QUERY, &server, m.buf + skip, m.len - skip, m.len - skip);
	return 0;
}

SEC("tp_btf/sock_recv_length")
int BPF_PROG(dns_received, struct sock *sk, int ret, int flags)
{
	bool connected;
	if (!client_sock(sk, &connected) || (flags & MSG_PEEK))
		return 0;
	struct peer server = {};
	if (connected) {
		sock_peer(sk, &server);
	} else {
		struct peer *s = bpf_sk_storage_get(&servers, sk, 0, 0);
		if (!s)
			return 0;
		server = *s;
	}
	struct found m = {};
	if (!this_call(ret, false, connected, &m) || ret < HDR + 5)
		return 0;
	__u8 h[HDR + 2] = {};
	if (m.len < HDR + 5 || bpf_probe_read_user(h, sizeof(h), (void *)m.buf))
		return 0;
	__u32 skip = 0, size = m.len;
	if (sk->sk_protocol == IPPROTO_TCP && be16(h) >= HDR && is_response(h + 2)) {
		// The length prefix came with the message (or its start).
		skip = 2;
		size = be16(h);
	} else if (!is_response(h)) {
		return 0;
	}
	emit(sk, DNS_RESPONSE, &server, m.buf + skip, m.len - skip, size);
	return 0;
}

char LICENSE[] SEC("license") = "Dual BSD/GPL";
