package agent

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf/rlimit"
	"golang.org/x/sys/unix"
)

// liftMemlock lifts RLIMIT_MEMLOCK where the kernel charges BPF maps to
// it (before 5.11; later ones charge the memory cgroup and this does
// nothing): container runtimes and distributions default to 64 KiB or
// 8 MiB, and the ring buffer alone is 8 MiB. Lifting needs
// CAP_SYS_RESOURCE unless the hard limit is already unlimited; without
// it the soft limit goes up to the hard one and the returned error says
// why the rest could not, for loadError.
func liftMemlock() error {
	err := rlimit.RemoveMemlock()
	if err == nil {
		return nil
	}
	var lim unix.Rlimit
	if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim) == nil && lim.Cur < lim.Max {
		lim.Cur = lim.Max
		unix.Setrlimit(unix.RLIMIT_MEMLOCK, &lim)
	}
	return fmt.Errorf("%w (RLIMIT_MEMLOCK is %s)", err, memlockNow())
}

func memlockNow() string {
	var lim unix.Rlimit
	if err := unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim); err != nil {
		return "unknown"
	}
	if lim.Cur == unix.RLIM_INFINITY {
		return "unlimited"
	}
	return fmt.Sprintf("%d KiB", lim.Cur/1024)
}

// loadError is why the probes did not load, for the operator. The agent
// checked its capabilities before loading, so a refusal (EPERM) where
// the memlock limit could not be lifted is that limit's doing, not a
// missing capability's, and says so.
func loadError(err, memlock error) error {
	if memlock != nil && errors.Is(err, os.ErrPermission) {
		return fmt.Errorf("%w: %w; this kernel charges BPF memory to RLIMIT_MEMLOCK (kernels before 5.11) and the agent could not lift it: %v; "+
			"add CAP_SYS_RESOURCE to the container's capabilities, or raise its memlock limit (ulimit -l unlimited)", ErrKernel, err, memlock)
	}
	return fmt.Errorf("%w: %w", ErrKernel, err)
}
