package process

import (
	"bytes"
	"os"
	"testing"
)

// The worker reads a process's cgroup file as it is: the agent's pods
// naming parses it on the loop.
func TestWorkerReadsCgroup(t *testing.T) {
	want, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	a := NewWorker(NewProcHost(), 1).Do(Lookup{Need: Cgroup, PID: uint32(os.Getpid())})
	if a.Err != nil || !bytes.Equal(a.Cgroup, want) || a.Need != Cgroup || a.PID != uint32(os.Getpid()) {
		t.Fatalf("answer %+v (%q), want %q", a.Lookup, a.Cgroup, want)
	}
	if a := NewWorker(NewProcHost(), 1).Do(Lookup{Need: Cgroup, PID: 1 << 30}); a.Err == nil {
		t.Fatalf("a process that does not exist: %q", a.Cgroup)
	}
}
