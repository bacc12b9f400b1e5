// Package netns finds the network namespaces of this host and runs code
// inside one of them on a dedicated OS thread.
package netns

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"

	"golang.org/x/sys/unix"
)

// Enumerate returns every network namespace that has a process in it or a
// bind mount under /run/netns, by inode, with a path that enters it.
func Enumerate() (map[uint32]string, error) {
	found := map[uint32]string{}
	add := func(path string) {
		var st unix.Stat_t
		if unix.Stat(path, &st) == nil {
			if _, ok := found[uint32(st.Ino)]; !ok {
				found[uint32(st.Ino)] = path
			}
		}
	}
	mounts, _ := filepath.Glob("/run/netns/*")
	for _, m := range mounts {
		add(m)
	}
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
	for _, e := range entries {
		if _, err := strconv.Atoi(e.Name()); err == nil {
			add("/proc/" + e.Name() + "/ns/net")
		}
	}
	return found, nil
}

// Inode of the namespace at path.
func Inode(path string) (uint32, error) {
	var st unix.Stat_t
	if err := unix.Stat(path, &st); err != nil {
		return 0, err
	}
	return uint32(st.Ino), nil
}

// Path returns a path entering namespace netns: through pid when it still
// lives there, else by searching all processes.
func Path(netns, pid uint32) (string, error) {
	if pid != 0 {
		p := fmt.Sprintf("/proc/%d/ns/net", pid)
		if ino, err := Inode(p); err == nil && ino == netns {
			return p, nil
		}
	}
	all, err := Enumerate()
	if err != nil {
		return "", err
	}
	if p, ok := all[netns]; ok {
		return p, nil
	}
	return "", fmt.Errorf("network namespace %d: no process or mount enters it", netns)
}

// Do runs fn inside the namespace at path. It uses a fresh locked thread;
// if the thread cannot get back to its own namespace it is left locked, so
// the runtime retires it instead of reusing it elsewhere.
func Do(path string, fn func() error) error {
	target, err := os.Open(path)
	if err != nil {
		return err
	}
	defer target.Close()

	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer self.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("enter network namespace %s: %w", path, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(self.Fd()), unix.CLONE_NEWNET); err != nil {
			done <- errors.Join(ferr, fmt.Errorf("leave network namespace: %w", err))
			return // thread stays locked and dies with the goroutine
		}
		runtime.UnlockOSThread()
		done <- ferr
	}()
	return <-done
}

// Addrs lists the interface addresses of the namespace at path.
func Addrs(path string) ([]netip.Addr, error) {
	var out []netip.Addr
	err := Do(path, func() error {
		addrs, err := net.InterfaceAddrs()
		if err != nil {
			return err
		}
		for _, a := range addrs {
			if n, ok := a.(*net.IPNet); ok {
				if ip, ok := netip.AddrFromSlice(n.IP); ok {
					out = append(out, ip.Unmap())
				}
			}
		}
		return nil
	})
	return out, err
}
