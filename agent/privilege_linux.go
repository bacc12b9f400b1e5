package agent

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// The agent loads BPF programs, enters other network namespaces and reads
// other processes' file descriptors. CAP_SYS_ADMIN covers BPF and perf on
// every kernel; CAP_SYS_PTRACE lets it read /proc/<pid>/fd and ns of others.
var required = []struct {
	bit  uint
	name string
}{{unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN"}, {unix.CAP_SYS_PTRACE, "CAP_SYS_PTRACE"}}

func checkPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("%w: cannot read capabilities: %v", ErrPrivilege, err)
	}
	var missing []string
	for _, c := range required {
		if data[c.bit/32].Effective&(1<<(c.bit%32)) == 0 {
			missing = append(missing, c.name)
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s not in effect; run as root (the DaemonSet runs privileged) or grant CAP_SYS_ADMIN and CAP_SYS_PTRACE",
			ErrPrivilege, strings.Join(missing, ", "))
	}
	return nil
}
