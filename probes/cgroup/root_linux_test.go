package cgroup

import (
	"os"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// pass is a cgroup_skb program that lets every packet by.
func pass(t *testing.T, attach ebpf.AttachType) *ebpf.Program {
	t.Helper()
	p, err := ebpf.NewProgram(&ebpf.ProgramSpec{Type: ebpf.CGroupSKB, AttachType: attach, License: "GPL",
		Instructions: asm.Instructions{asm.Mov.Imm(asm.R0, 1), asm.Return()}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return p
}

// One pair on the root whatever joins it; a slot holds one capture; the
// pair goes with the last capture, and comes back with the next.
func TestJoin(t *testing.T) {
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("BPF tests must run as root in CI")
		}
		t.Skip("needs root")
	}
	eg, in := pass(t, ebpf.AttachCGroupInetEgress), pass(t, ebpf.AttachCGroupInetIngress)
	leaveDNS, err := Join(DNS, eg, in)
	if err != nil {
		t.Fatal(err)
	}
	first := pair.objs
	if _, err := Join(DNS, eg, in); err == nil {
		t.Fatal("a second DNS capture joined")
	}
	leaveHTTP, err := Join(HTTP, eg, in)
	if err != nil {
		t.Fatal(err)
	}
	if pair.objs != first || len(pair.links) != 2 {
		t.Fatalf("HTTP joined with a pair of its own (%d links)", len(pair.links))
	}
	leaveDNS()
	leaveDNS() // twice: a no-op, not HTTP's slot or the pair
	if pair.objs == nil || !pair.joined[HTTP] {
		t.Fatal("the pair went while HTTP capture was still on it")
	}
	var prog *ebpf.Program
	if err := pair.objs.EgressNext.Lookup(uint32(DNS), &prog); err == nil {
		prog.Close()
		t.Fatal("DNS's slot still holds its program after it left")
	}
	leaveHTTP()
	if pair.objs != nil || pair.links != nil {
		t.Fatal("the pair stayed attached after the last capture left")
	}
	leave, err := Join(HTTP, eg, in)
	if err != nil {
		t.Fatal(err)
	}
	leave()
}
