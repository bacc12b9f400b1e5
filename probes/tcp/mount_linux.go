package tcp

import "golang.org/x/sys/unix"

func mountTracefs() error {
	return unix.Mount("nodev", "/sys/kernel/tracing", "tracefs", 0, "")
}
