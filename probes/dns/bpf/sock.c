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
#define PF_KTHREAD 0x00200000
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

static __always_inline bool from_msghdr(__u64 at, long ret, bool send, struct found *m)
{
	struct user_msghdr h = {};
	if (bpf_probe_read_user(&h, sizeof(h), (void *)at))
		return false;
	m->buf = iov_buf((__u64)h.msg_iov, h.msg_iovlen, &m->len);
	if (send && h.msg_name && h.msg_namelen > 0)
		m->name = (__u64)h.msg_name;
	return true;
}

// this_call finds the message of the current call, which moved ret bytes.
// False for calls that carry no buffer to find: io_uring, sendfile, the
// kernel's own sockets.
static __always_inline bool this_call(long ret, bool send, struct found *m)
{
	struct task_struct *task = bpf_get_current_task_btf();
	if (task->flags & PF_KTHREAD)
		return false;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	__u64 arg = regs->si;
	m->len = ret;
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
		m->buf = iov_buf(arg, regs->dx, &m->len);
		break;
	case NR_sendmsg:
	case NR_recvmsg:
		if (!from_msghdr(arg, ret, send, m))
			return false;
		break;
	case NR_sendmmsg:
	case NR_recvmmsg: {
		__u32 i = batch_index(arg, regs->dx, ret);
		if (i >= MAX_BATCH || !from_msghdr(arg + i * sizeof(struct mmsghdr), ret, send, m))
			return false;
		break;
	}
	default:
		return false;
	}
	// A receive fills no more than it moved.
	if (!send && m->len > (__u64)ret)
		m->len = ret;
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
	if (!client_sock(sk, &connected))
		return 0;
	// A failed call still ends its thread's batch (this_call).
	struct found m = {};
	if ((ret > 0 && ret < HDR + 5) || !this_call(ret, true, &m) || ret < HDR + 5)
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
	if ((ret > 0 && ret < HDR + 5) || !this_call(ret, false, &m) || ret < HDR + 5)
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
