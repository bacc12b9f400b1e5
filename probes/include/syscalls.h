// SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause)
// x86_64 numbers of the socket calls whose buffers the socket tracepoint
// objects find from the syscall's registers (bpf_task_pt_regs: orig_ax is
// the number, si the buffer, dx the count).
#pragma once

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
