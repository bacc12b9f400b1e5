package agent

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"
)

// A refusal where the memlock limit could not be lifted names that limit
// and what to do, never a capability the agent already checked it holds.
func TestLoadErrorBlamesMemlockNotCapabilities(t *testing.T) {
	eperm := fmt.Errorf("load TCP lifecycle probe: map create: %w", syscall.EPERM)
	stuck := errors.New("failed to set memlock rlimit: operation not permitted (RLIMIT_MEMLOCK is 64 KiB)")

	err := loadError(eperm, stuck)
	msg := err.Error()
	if !errors.Is(err, ErrKernel) || errors.Is(err, ErrPrivilege) || !errors.Is(err, syscall.EPERM) {
		t.Fatalf("%v: want ErrKernel (exit 4) wrapping EPERM, not ErrPrivilege", err)
	}
	for _, want := range []string{"RLIMIT_MEMLOCK (kernels before 5.11)", "RLIMIT_MEMLOCK is 64 KiB", "CAP_SYS_RESOURCE", "ulimit -l unlimited"} {
		if !strings.Contains(msg, want) {
			t.Errorf("%q lacks %q", msg, want)
		}
	}

	// Lifted (or never needed): the kernel's answer as it is.
	if got := loadError(eperm, nil).Error(); got != ErrKernel.Error()+": "+eperm.Error() {
		t.Errorf("lifted: %q", got)
	}
	// Not a refusal: memlock is not the cause.
	other := fmt.Errorf("attach: %w", os.ErrNotExist)
	if got := loadError(other, stuck).Error(); got != ErrKernel.Error()+": "+other.Error() {
		t.Errorf("other error: %q", got)
	}
}

// On kernels that charge the memory cgroup (5.11 and later, this host's),
// lifting is a no-op: it succeeds and leaves the limit alone.
func TestLiftMemlockIsANoOpWhereNotNeeded(t *testing.T) {
	var u unix.Utsname
	if err := unix.Uname(&u); err != nil {
		t.Fatal(err)
	}
	var major, minor int
	fmt.Sscanf(unix.ByteSliceToString(u.Release[:]), "%d.%d", &major, &minor)
	if major < 5 || major == 5 && minor < 11 {
		t.Skip("kernel before 5.11: lifting changes the limit (make test-kernels runs the agent there)")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root (the memcg check creates a BPF map)")
		}
		t.Skip("needs root (the memcg check creates a BPF map)")
	}
	var before, after unix.Rlimit
	unix.Getrlimit(unix.RLIMIT_MEMLOCK, &before)
	if err := liftMemlock(); err != nil {
		t.Fatal(err)
	}
	unix.Getrlimit(unix.RLIMIT_MEMLOCK, &after)
	if before != after {
		t.Fatalf("RLIMIT_MEMLOCK changed from %+v to %+v", before, after)
	}
}
