// Package cgroup finds the root of the cgroup v2 hierarchy, where programs
// that every socket on the node must pass (cgroup_skb) are attached, and
// keeps the one program pair there that hands DNS and HTTP capture their
// packets (Join).
package cgroup

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// ErrNoRoot: no cgroup v2 mount shows the hierarchy's root. In a container
// the agent needs the host's (cgroupns: host, or /sys/fs/cgroup mounted
// from the host).
var ErrNoRoot = errors.New("the cgroup v2 root is not mounted here: mount the host's /sys/fs/cgroup (cgroup v2 or hybrid) and run in the host's cgroup namespace")

// Root is the path of a cgroup v2 mount showing the hierarchy's root,
// from /proc/self/mountinfo. Unified hosts mount it at /sys/fs/cgroup,
// hybrid ones at /sys/fs/cgroup/unified; a container may mount it
// anywhere (the DaemonSet mounts the node's /sys/fs/cgroup). A container
// that sees only its own cgroup but shares the host's PID namespace reaches
// the host's mount through /proc/1/root.
func Root() (string, error) {
	dir, err := rootIn("/proc/self/mountinfo", "")
	if err == nil || !errors.Is(err, ErrNoRoot) {
		return dir, err
	}
	if host, err2 := rootIn("/proc/1/mountinfo", "/proc/1/root"); err2 == nil {
		return host, nil
	}
	return "", err
}

func rootIn(mountinfo, prefix string) (string, error) {
	f, err := os.Open(mountinfo)
	if err != nil {
		return "", err
	}
	defer f.Close()
	return root(f, prefix, isRoot)
}

// root reads mountinfo lines and returns the first cgroup2 mount that ok
// confirms as the hierarchy's root, its path under prefix.
func root(r io.Reader, prefix string, ok func(dir string) bool) (string, error) {
	var seen []string
	s := bufio.NewScanner(r)
	for s.Scan() {
		// id parent major:minor root mountpoint options [optional...] - fstype source super
		f := strings.Fields(s.Text())
		sep := -1
		for i, x := range f {
			if x == "-" {
				sep = i
				break
			}
		}
		if sep < 5 || sep+1 >= len(f) || f[sep+1] != "cgroup2" {
			continue
		}
		dir := prefix + unescape(f[4])
		seen = append(seen, dir)
		// Not the mount's root field: a container with a cgroup namespace
		// of its own shows the host's hierarchy, bind-mounted from the
		// node (hostPath /sys/fs/cgroup), as "/../..". The directory
		// itself says whether it is the root.
		if ok(dir) {
			return dir, nil
		}
	}
	if err := s.Err(); err != nil {
		return "", err
	}
	if len(seen) > 0 {
		return "", fmt.Errorf("%w (cgroup2 mounted at %s, but not its root)", ErrNoRoot, strings.Join(seen, ", "))
	}
	return "", ErrNoRoot
}

// isRoot: a mount of a cgroup namespace's root also says "/", but only
// the real root cgroup has no cgroup.type file.
func isRoot(dir string) bool {
	if _, err := os.Stat(filepath.Join(dir, "cgroup.procs")); err != nil {
		return false
	}
	_, err := os.Stat(filepath.Join(dir, "cgroup.type"))
	return errors.Is(err, os.ErrNotExist)
}

// unescape undoes mountinfo's octal escapes (\040 for a space).
func unescape(s string) string {
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+3 < len(s) && isOctal(s[i+1]) && isOctal(s[i+2]) && isOctal(s[i+3]) {
			b.WriteByte((s[i+1]-'0')<<6 | (s[i+2]-'0')<<3 | (s[i+3] - '0'))
			i += 3
			continue
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func isOctal(c byte) bool { return c >= '0' && c <= '7' }
