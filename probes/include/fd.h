// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// The socket behind a file descriptor, for the syscall-hook objects
// (probes/http syscall.c, probes/dns), which get an fd, not a socket.
#pragma once

#include "vmlinux.h"
#include "bpf_helpers.h"
#include "bpf_core_read.h"

#define S_IFMT 00170000
#define S_IFSOCK 0140000

// inet_sock_of_fd returns the IPv4 or IPv6 socket behind fd of the current
// task, or 0 for anything else.
static __always_inline struct sock *inet_sock_of_fd(int fd)
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
	if (!sk)
		return 0;
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != 2 && family != 10) // AF_INET, AF_INET6
		return 0;
	return sk;
}
