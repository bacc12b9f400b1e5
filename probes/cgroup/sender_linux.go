package cgroup

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/features"
)

// NamesSender says whether the kernel lets cgroup_skb programs name the
// task a packet leaves in, with bpf_get_current_pid_tgid and
// bpf_get_current_comm (refused there by 6.12, taken by 6.18): the DNS and
// HTTP packet programs name a query's or request's sender so. Probed, not
// guessed by version: backports differ.
func NamesSender() error {
	for _, h := range []struct {
		fn   asm.BuiltinFunc
		name string
	}{{asm.FnGetCurrentPidTgid, "bpf_get_current_pid_tgid"}, {asm.FnGetCurrentComm, "bpf_get_current_comm"}} {
		if err := features.HaveProgramHelper(ebpf.CGroupSKB, h.fn); errors.Is(err, ebpf.ErrNotSupported) {
			return fmt.Errorf("this kernel does not let cgroup_skb programs call %s: %w", h.name, ebpf.ErrNotSupported)
		}
	}
	return nil
}
