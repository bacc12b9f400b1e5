// Package tracepoint is what every probe that attaches to tracepoints
// shares: tracefs where the kernel exposes them, and attaching a set of
// programs all or nothing.
package tracepoint

import (
	"errors"
	"fmt"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"
)

// SocketHooks are the socket tracepoints (Linux 6.3+) that fire once per
// socket call, after the data moved, with the socket: the capture that
// nothing but socket calls pays for.
var SocketHooks = []string{"sock_send_length", "sock_recv_length"}

// MissingBTF names the first of hooks the running kernel has no BTF
// tracepoint for, "" when it has all of them (or its BTF cannot be read:
// the attach says then). Said in one line rather than as the attach's
// opaque EINVAL.
func MissingBTF(hooks ...string) string {
	spec, err := btf.LoadKernelSpec()
	if err != nil {
		return ""
	}
	for _, hook := range hooks {
		var td *btf.Typedef
		if err := spec.TypeByName("btf_trace_"+hook, &td); errors.Is(err, btf.ErrNotFound) {
			return hook
		}
	}
	return ""
}

// EnsureTracefs mounts tracefs where it is missing: tracepoint links need
// it, and a container's /sys may not have it.
func EnsureTracefs() error {
	for _, dir := range []string{"/sys/kernel/tracing", "/sys/kernel/debug/tracing"} {
		if _, err := os.Stat(dir + "/events"); err == nil {
			return nil
		}
	}
	if err := unix.Mount("nodev", "/sys/kernel/tracing", "tracefs", 0, ""); err != nil {
		return fmt.Errorf("tracefs is not mounted and mounting it failed (mount -t tracefs nodev /sys/kernel/tracing): %w", err)
	}
	return nil
}

// AttachSyscalls attaches each program to its syscalls/<name> tracepoint
// (sys_enter_read), every one or none: on an error the links made so far
// are closed. It mounts tracefs first where it is missing.
func AttachSyscalls(progs map[string]*ebpf.Program) ([]link.Link, error) {
	if err := EnsureTracefs(); err != nil {
		return nil, err
	}
	var links []link.Link
	for name, prog := range progs {
		l, err := link.Tracepoint("syscalls", name, prog, nil)
		if err != nil {
			for _, l := range links {
				l.Close()
			}
			return nil, fmt.Errorf("attach tracepoint syscalls/%s: %w", name, err)
		}
		links = append(links, l)
	}
	return links, nil
}
