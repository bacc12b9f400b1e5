package agent

import (
	"fmt"
	"strings"

	"golang.org/x/sys/unix"
)

// The agent loads BPF programs, enters other network namespaces and reads
// other processes' file descriptors. CAP_SYS_ADMIN covers BPF and perf on
// every kernel and is what setns needs (CAP_BPF and CAP_PERFMON load every
// probe but cannot enter a namespace); CAP_SYS_PTRACE lets it read
// /proc/<pid>/fd and ns of others. Measured: recipes, manifests/daemonset.yaml.
var required = []struct {
	bit       uint
	name, why string
}{
	{unix.CAP_SYS_ADMIN, "CAP_SYS_ADMIN", "to load BPF programs and to setns into pods' network namespaces"},
	{unix.CAP_SYS_PTRACE, "CAP_SYS_PTRACE", "to read other processes' /proc/<pid>/ns and /proc/<pid>/fd"},
}

func checkPrivileges() error {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		return fmt.Errorf("%w: cannot read capabilities: %v", ErrPrivilege, err)
	}
	var missing []string
	for _, c := range required {
		if data[c.bit/32].Effective&(1<<(c.bit%32)) == 0 {
			missing = append(missing, c.name+" ("+c.why+")")
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("%w: %s not in effect; run as root, or in a container add CAP_SYS_ADMIN and CAP_SYS_PTRACE to securityContext.capabilities (manifests/daemonset.yaml does)",
			ErrPrivilege, strings.Join(missing, " and "))
	}
	return nil
}
