package netlab_test

import (
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/stratanet/strata/e2e/netlab"
)

// result is what tcpclient prints.
type result struct {
	OK       int      `json:"ok"`
	Failed   int      `json:"failed"`
	Errors   []string `json:"errors"`
	Sent     int64    `json:"sent"`
	Received int64    `json:"received"`
}

// buildTools builds the test peers once per test into a temp dir.
func buildTools(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for _, name := range []string{"tcpserver", "tcpclient"} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), "../cmd/"+name).CombinedOutput()
		if err != nil {
			t.Fatalf("build %s: %v\n%s", name, err, out)
		}
	}
	return dir
}

func runClient(t *testing.T, h *netlab.Host, bin string, args ...string) result {
	t.Helper()
	out, err := h.Run(filepath.Join(bin, "tcpclient"), args...)
	if err != nil {
		t.Fatalf("tcpclient %v: %v", args, err)
	}
	var r result
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("tcpclient output %q: %v", out, err)
	}
	return r
}

// tcpCounter reads a Tcp counter from /proc/net/snmp as the namespace sees it.
func tcpCounter(t *testing.T, h *netlab.Host, name string) int64 {
	t.Helper()
	out, err := h.Run("cat", "/proc/net/snmp")
	if err != nil {
		t.Fatal(err)
	}
	var header []string
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "Tcp:" {
			continue
		}
		if header == nil {
			header = f
			continue
		}
		for i, k := range header {
			if k == name && i < len(f) {
				v, _ := strconv.ParseInt(f[i], 10, 64)
				return v
			}
		}
	}
	t.Fatalf("no Tcp counter %s in /proc/net/snmp", name)
	return 0
}

func TestLab(t *testing.T) {
	// Ports 918x and 10.250/16 stay clear of the e2e/tcp scenarios: their
	// agent sees every namespace and counts per port, and go test runs
	// packages in parallel.
	lab := netlab.New(t) // first, so that without root it fails or skips before building
	bin := buildTools(t)
	srv := lab.Host("srv", "10.250.1.3/16")
	cli := lab.Host("cli", "10.250.1.2/16")
	server := func(port string, args ...string) *exec.Cmd {
		p, _ := strconv.ParseUint(port, 10, 16)
		cmd := srv.Start(filepath.Join(bin, "tcpserver"), append([]string{"-listen", "10.250.1.3:" + port}, args...)...)
		srv.WaitListen(uint16(p))
		return cmd
	}

	t.Run("exchange", func(t *testing.T) {
		cmd := server("9180", "-request", "100", "-reply", "1000")
		// ip netns exec execs the tool, so the agent will see its own name.
		comm, err := os.ReadFile("/proc/" + strconv.Itoa(cmd.Process.Pid) + "/comm")
		if err != nil || strings.TrimSpace(string(comm)) != "tcpserver" {
			t.Errorf("server comm = %q, %v; want tcpserver", comm, err)
		}
		r := runClient(t, cli, bin, "-connect", "10.250.1.3:9180", "-count", "3", "-requests", "2", "-send", "100", "-expect", "1000")
		if r.OK != 3 || r.Failed != 0 || r.Sent != 600 || r.Received != 6000 || len(r.Errors) != 0 {
			t.Errorf("got %+v, want ok=3 failed=0 sent=600 received=6000", r)
		}
	})

	t.Run("reset", func(t *testing.T) {
		server("9181", "-request", "10", "-reset")
		r := runClient(t, cli, bin, "-connect", "10.250.1.3:9181", "-count", "2", "-send", "10", "-expect", "10", "-allow-fail")
		if r.OK != 0 || r.Failed != 2 || r.Sent != 20 || r.Received != 0 {
			t.Errorf("got %+v, want ok=0 failed=2 sent=20 received=0", r)
		}
		if len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "connection reset by peer") {
			t.Errorf("errors = %q, want one reset", r.Errors)
		}
		// Without -allow-fail a failure must show in the exit status.
		if _, err := cli.Run(filepath.Join(bin, "tcpclient"), "-connect", "10.250.1.3:9181", "-send", "10"); err == nil {
			t.Error("tcpclient exited 0 after a reset")
		}
	})

	t.Run("drop-syn", func(t *testing.T) {
		server("9182")
		srv.DropSYN(9182)
		r := runClient(t, cli, bin, "-connect", "10.250.1.3:9182", "-timeout", "1s", "-allow-fail")
		if r.OK != 0 || r.Failed != 1 || len(r.Errors) != 1 || !strings.Contains(r.Errors[0], "timeout") {
			t.Errorf("got %+v, want one dial timeout", r)
		}
	})

	t.Run("drop-every", func(t *testing.T) {
		server("9183", "-request", "200000", "-reply", "10")
		srv.DropEvery(9183, 4)
		before := tcpCounter(t, cli, "RetransSegs")
		r := runClient(t, cli, bin, "-connect", "10.250.1.3:9183", "-requests", "5", "-send", "200000", "-expect", "10")
		if r.OK != 1 || r.Sent != 1000000 || r.Received != 50 {
			t.Errorf("got %+v, want ok=1 sent=1000000 received=50", r)
		}
		if d := tcpCounter(t, cli, "RetransSegs") - before; d == 0 {
			t.Error("no retransmissions despite dropping every 4th segment")
		}
	})

	t.Run("sysctl", func(t *testing.T) {
		cli.Sysctl("net.ipv4.tcp_syn_retries", "1")
		if out, err := cli.Run("sysctl", "-n", "net.ipv4.tcp_syn_retries"); err != nil || strings.TrimSpace(out) != "1" {
			t.Errorf("tcp_syn_retries in %s = %q, %v", cli.NS, out, err)
		}
		if out, _ := srv.Run("sysctl", "-n", "net.ipv4.tcp_syn_retries"); strings.TrimSpace(out) == "1" {
			t.Error("sysctl leaked into another namespace")
		}
	})

	t.Run("inode", func(t *testing.T) {
		out, err := cli.Run("readlink", "/proc/self/ns/net")
		if want := "net:[" + strconv.FormatUint(uint64(cli.NetnsInode()), 10) + "]"; err != nil || strings.TrimSpace(out) != want {
			t.Errorf("ns link %q, %v; want %s", out, err, want)
		}
		if cli.NetnsInode() == srv.NetnsInode() {
			t.Error("two hosts share a namespace inode")
		}
	})
}

// A lab removes its namespaces and processes when its test ends.
func TestCleanup(t *testing.T) {
	var ns string
	var pid int
	t.Run("lab", func(t *testing.T) {
		h := netlab.New(t).Host("a", "10.250.2.1/16")
		ns, pid = h.NS, h.Start("sleep", "600").Process.Pid
	})
	if ns == "" {
		return // skipped
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	prefix := ns[:strings.IndexByte(ns, '-')+1]
	if strings.Contains(string(out), prefix) {
		t.Errorf("namespaces with prefix %s left behind:\n%s", prefix, out)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("process %d still running", pid)
	}
}

// Without root the lab must fail under CI=true (a skip would hide a broken
// CI runner) and skip elsewhere. Checked by rerunning this test binary as
// nobody.
func TestWithoutRoot(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("already unprivileged; TestLab covers this case")
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// nobody must be able to reach the copy: a fresh 0755 dir outside t.TempDir's 0700 tree.
	dir, err := os.MkdirTemp("", "netlab-nobody-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o755)
	copyExe := filepath.Join(dir, "netlab.test")
	src, err := os.Open(exe)
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	dst, err := os.OpenFile(copyExe, os.O_CREATE|os.O_WRONLY, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(dst, src); err != nil {
		t.Fatal(err)
	}
	dst.Close()

	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "CI=") {
			env = append(env, kv)
		}
	}
	run := func(ci string) (string, error) {
		cmd := exec.Command(copyExe, "-test.run", "^TestLab$", "-test.v")
		cmd.Dir = dir
		cmd.Env = append(env, "CI="+ci)
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run("true"); err == nil || !strings.Contains(out, "--- FAIL: TestLab") || !strings.Contains(out, "needs root") {
		t.Errorf("CI=true as nobody: err=%v, want a failure citing root:\n%s", err, out)
	}
	if out, err := run(""); err != nil || !strings.Contains(out, "--- SKIP: TestLab") {
		t.Errorf("as nobody outside CI: err=%v, want a skip:\n%s", err, out)
	}
}
