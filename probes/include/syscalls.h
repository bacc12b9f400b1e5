// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// What the socket tracepoint objects (probes/http sock.c, probes/dns
// sock.c) share to find a call's buffer from its x86_64 registers
// (orig_ax is the call's number, si the buffer, dx the count).
#pragma once

#include "vmlinux.h"
#include "bpf_helpers.h"

#define NR_read 0
#define NR_write 1
#define NR_readv 19
#define NR_writev 20
#define NR_sendto 44
#define NR_recvfrom 45
#define NR_sendmsg 46
#define NR_recvmsg 47
#define NR_recvmmsg 299
#define NR_sendmmsg 307

#define PF_IO_WORKER 0x00000010
#define PF_KTHREAD 0x00200000
#define ENOSYS 38

// The registers of the current task's system call, or 0 when the hook
// runs outside one: kernel threads, io_uring's workers, and task work run
// on the way out of a call (io_uring's), whose registers describe that
// call. Inside a call ax holds -ENOSYS until it returns.
static __always_inline struct pt_regs *syscall_regs(void)
{
	struct task_struct *task = bpf_get_current_task_btf();
	if (task->flags & (PF_KTHREAD | PF_IO_WORKER))
		return 0;
	struct pt_regs *regs = (struct pt_regs *)bpf_task_pt_regs(task);
	if (regs->ax != (unsigned long)-ENOSYS)
		return 0;
	return regs;
}
