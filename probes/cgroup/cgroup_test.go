package cgroup

import (
	"errors"
	"strings"
	"testing"
)

const hybrid = `31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
`

func TestRoot(t *testing.T) {
	all := func(string) bool { return true }
	for _, c := range []struct {
		name, mountinfo, want string
		ok                    func(string) bool
		err                   error
	}{
		{"hybrid", hybrid, "/sys/fs/cgroup/unified", all, nil},
		{"unified", "29 23 0:26 / /sys/fs/cgroup rw,nosuid shared:4 - cgroup2 cgroup2 rw,nsdelegate\n", "/sys/fs/cgroup", all, nil},
		{"a namespace's root first, then the host's", "50 40 0:26 / /sys/fs/cgroup ro - cgroup2 cgroup rw\n" +
			"51 40 0:26 / /host/cgroup\\040root rw - cgroup2 cgroup2 rw\n", "/host/cgroup root",
			func(d string) bool { return d != "/sys/fs/cgroup" }, nil},
		{"only a sub-tree", "50 40 0:26 /kubepods/pod1 /sys/fs/cgroup ro - cgroup2 cgroup rw\n", "",
			func(string) bool { return false }, ErrNoRoot},
		{"the node's root mounted into a container with its own cgroup namespace",
			"50 40 0:26 / /sys/fs/cgroup ro - cgroup2 cgroup rw\n" + "60 40 0:26 /../../.. /host/cgroup ro - cgroup2 cgroup2 rw\n",
			"/host/cgroup", func(d string) bool { return d == "/host/cgroup" }, nil},
		{"no cgroup2", "31 23 0:28 / /sys/fs/cgroup rw - tmpfs tmpfs rw\n", "", all, ErrNoRoot},
	} {
		got, err := root(strings.NewReader(c.mountinfo), "", c.ok)
		if got != c.want || !errors.Is(err, c.err) {
			t.Errorf("%s: %q, %v; want %q, %v", c.name, got, err, c.want, c.err)
		}
	}
}

// Through another process's root: its mount's path under the prefix.
func TestRootThroughPID1(t *testing.T) {
	var asked string
	got, err := root(strings.NewReader(hybrid), "/proc/1/root", func(d string) bool { asked = d; return true })
	if got != "/proc/1/root/sys/fs/cgroup/unified" || asked != got || err != nil {
		t.Fatalf("%q (checked %q), %v", got, asked, err)
	}
}

// On this machine (root or not) the real root is found and confirmed.
func TestRootHere(t *testing.T) {
	dir, err := Root()
	if err != nil {
		t.Fatal(err)
	}
	if !isRoot(dir) {
		t.Fatalf("%s is not the root", dir)
	}
}
