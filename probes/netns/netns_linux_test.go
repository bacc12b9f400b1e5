package netns

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"testing"
)

func scratchNetns(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("namespace tests must run as root in CI")
		}
		t.Skip("needs root")
	}
	name := fmt.Sprintf("strata-nstest-%d", os.Getpid())
	for _, args := range [][]string{
		{"netns", "add", name},
		{"-n", name, "link", "add", "d0", "type", "veth", "peer", "name", "d1"},
		{"-n", name, "addr", "add", "10.250.77.1/24", "dev", "d0"},
		{"-n", name, "link", "set", "d0", "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			exec.Command("ip", "netns", "del", name).Run()
			t.Fatalf("ip %v: %v %s", args, err, out)
		}
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	return "/run/netns/" + name
}

func TestEnumerateDoAndAddrs(t *testing.T) {
	path := scratchNetns(t)
	ino, err := Inode(path)
	if err != nil {
		t.Fatal(err)
	}
	all, err := Enumerate()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := all[ino]; !ok {
		t.Fatalf("Enumerate missed namespace %d (%s)", ino, path)
	}
	self, _ := Inode("/proc/self/ns/net")
	if _, ok := all[self]; !ok {
		t.Fatal("Enumerate missed the agent's own namespace")
	}

	var inside uint32
	if err := Do(path, func() error {
		var err error
		inside, err = Inode("/proc/thread-self/ns/net")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if inside != ino {
		t.Fatalf("Do ran in namespace %d, want %d", inside, ino)
	}
	if now, _ := Inode("/proc/thread-self/ns/net"); now != self {
		t.Fatalf("the caller's thread ended in namespace %d", now)
	}

	addrs, err := Addrs(path)
	if err != nil {
		t.Fatal(err)
	}
	want := netip.MustParseAddr("10.250.77.1")
	found := false
	for _, a := range addrs {
		found = found || a == want
	}
	if !found {
		t.Fatalf("Addrs = %v, want it to include %v", addrs, want)
	}
	if p, err := Path(ino, 0); err != nil || p == "" {
		t.Fatalf("Path(%d) = %q, %v", ino, p, err)
	}
	if _, err := Path(1, 0); err == nil {
		t.Fatal("Path found a namespace that does not exist")
	}
}
