// Package netlab builds throwaway network namespaces joined by a bridge for
// privileged tests. Nothing is routed out of them, and everything a lab
// makes is removed when the test ends, failed or not.
package netlab

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// T is what a lab needs of its owner: a *testing.T, or a program's own
// implementation (the demo runs the test cluster outside any test).
type T interface {
	Helper()
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Failed() bool
	Cleanup(func())
}

// Lab is a bridge in its own namespace plus the hosts plugged into it.
type Lab struct {
	t      T
	id     string
	bridge string // namespace holding the bridge
	mu     sync.Mutex
	n      int
	procs  []*proc
}

type proc struct {
	cmd  *exec.Cmd
	out  *bytes.Buffer
	host *Host
	done chan struct{} // closed once the process exited (one Wait, here)
}

// Host is one network namespace with one address on the lab's bridge.
type Host struct {
	Name string
	NS   string
	IP   netip.Addr
	Dev  string // its interface on the bridge
	lab  *Lab
}

// Require fails the test in CI, and skips it elsewhere, when the lab cannot
// run: a skipped network test in CI would hide a regression.
func Require(t T) {
	t.Helper()
	reason := ""
	if os.Geteuid() != 0 {
		reason = "needs root to create network namespaces"
	} else if _, err := exec.LookPath("ip"); err != nil {
		reason = "needs ip (iproute2)"
	}
	if reason == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("netlab: %s", reason)
	}
	t.Skipf("netlab: %s", reason)
}

// New creates a lab and registers its removal.
func New(t T) *Lab {
	t.Helper()
	Require(t)
	b := make([]byte, 2)
	rand.Read(b)
	l := &Lab{t: t, id: "sl" + hex.EncodeToString(b)}
	l.bridge = l.id + "-br"
	t.Cleanup(l.cleanup)
	l.ip("netns", "add", l.bridge)
	l.ipIn(l.bridge, "link", "add", "br0", "type", "bridge")
	l.ipIn(l.bridge, "link", "set", "br0", "up")
	return l
}

func (l *Lab) run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %v: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func (l *Lab) must(name string, args ...string) string {
	l.t.Helper()
	out, err := l.run(name, args...)
	if err != nil {
		l.t.Fatalf("%v", err)
	}
	return out
}

func (l *Lab) ip(args ...string) { l.t.Helper(); l.must("ip", args...) }
func (l *Lab) ipIn(ns string, args ...string) {
	l.t.Helper()
	l.must("ip", append([]string{"-n", ns}, args...)...)
}

// Host adds a namespace with lo up and one veth on the bridge, addressed
// with prefix (e.g. "10.244.1.2/16"). It has no default route.
func (l *Lab) Host(name, prefix string) *Host {
	l.t.Helper()
	p, err := netip.ParsePrefix(prefix)
	if err != nil {
		l.t.Fatalf("netlab: host %s: %v", name, err)
	}
	l.mu.Lock()
	l.n++
	n := l.n
	l.mu.Unlock()
	h := &Host{Name: name, NS: fmt.Sprintf("%s-%s", l.id, name), IP: p.Addr(), lab: l}
	in, out := fmt.Sprintf("%sh%d", l.id, n), fmt.Sprintf("%sb%d", l.id, n) // <= 15 chars
	h.Dev = in
	l.ip("netns", "add", h.NS)
	l.ip("link", "add", in, "netns", h.NS, "type", "veth", "peer", "name", out, "netns", l.bridge)
	l.ipIn(l.bridge, "link", "set", out, "master", "br0", "up")
	l.ipIn(h.NS, "link", "set", "lo", "up")
	l.ipIn(h.NS, "addr", "add", prefix, "dev", in)
	l.ipIn(h.NS, "link", "set", in, "up")
	return h
}

// Start runs a command inside the namespace until the test ends. Its output
// is shown if the test fails.
func (h *Host) Start(name string, args ...string) *exec.Cmd {
	h.lab.t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
	out := &bytes.Buffer{}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		h.lab.t.Fatalf("netlab: start %s in %s: %v", name, h.Name, err)
	}
	p := &proc{cmd: cmd, out: out, host: h, done: make(chan struct{})}
	go func() { cmd.Wait(); close(p.done) }()
	h.lab.mu.Lock()
	h.lab.procs = append(h.lab.procs, p)
	h.lab.mu.Unlock()
	return cmd
}

// Exited reports whether a command Start ran has ended, and its exit code.
func (h *Host) Exited(cmd *exec.Cmd) (code int, exited bool) {
	h.lab.mu.Lock()
	defer h.lab.mu.Unlock()
	for _, p := range h.lab.procs {
		if p.cmd == cmd {
			select {
			case <-p.done:
				return cmd.ProcessState.ExitCode(), true
			default:
				return 0, false
			}
		}
	}
	return 0, false
}

// Node plugs the machine's own network namespace into the bridge with
// addr (a /32) and routes to prefixes through it: a node's address on its
// pod network, for processes on the host network. The pair of interfaces
// goes with the lab's bridge namespace.
func (l *Lab) Node(addr string, prefixes ...string) {
	l.t.Helper()
	l.mu.Lock()
	l.n++
	n := l.n
	l.mu.Unlock()
	in, out := fmt.Sprintf("%sn%d", l.id, n), fmt.Sprintf("%sb%d", l.id, n)
	l.ip("link", "add", in, "type", "veth", "peer", "name", out, "netns", l.bridge)
	l.ipIn(l.bridge, "link", "set", out, "master", "br0", "up")
	l.ip("addr", "add", addr+"/32", "dev", in)
	l.ip("link", "set", in, "up")
	for _, p := range prefixes {
		l.ip("route", "add", p, "dev", in, "src", addr)
	}
}

// Remove kills what runs in the host and deletes its namespace, as when a
// pod goes away.
func (h *Host) Remove() {
	h.lab.mu.Lock()
	var mine, rest []*proc
	for _, p := range h.lab.procs {
		if p.host == h {
			mine = append(mine, p)
		} else {
			rest = append(rest, p)
		}
	}
	h.lab.procs = rest
	h.lab.mu.Unlock()
	for _, p := range mine {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
	}
	if _, err := h.lab.run("ip", "netns", "del", h.NS); err != nil {
		h.lab.t.Errorf("netlab: remove %s: %v", h.Name, err)
	}
	os.RemoveAll(etcDir(h.NS))
}

// Stop kills one command Start ran (its whole process group) and waits
// for it, leaving the host and its other commands as they are.
func (h *Host) Stop(cmd *exec.Cmd) {
	h.lab.mu.Lock()
	var stop *proc
	var rest []*proc
	for _, p := range h.lab.procs {
		if p.cmd == cmd {
			stop = p
		} else {
			rest = append(rest, p)
		}
	}
	h.lab.procs = rest
	h.lab.mu.Unlock()
	if stop != nil {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-stop.done
	}
}

// etcDir holds files that ip netns exec bind-mounts over /etc's for the
// namespace's programs.
func etcDir(ns string) string { return filepath.Join("/etc/netns", ns) }

// Resolver points the namespace's DNS at servers: ip netns exec bind-mounts
// /etc/netns/<ns>/resolv.conf over /etc/resolv.conf, so commands started
// after this resolve names there (libc and Go alike). The file goes with
// the host.
func (h *Host) Resolver(servers ...string) {
	h.lab.t.Helper()
	var b strings.Builder
	for _, s := range servers {
		fmt.Fprintf(&b, "nameserver %s\n", s)
	}
	b.WriteString("options timeout:1 attempts:2\n")
	dir := etcDir(h.NS)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		h.lab.t.Fatalf("netlab: resolver of %s: %v", h.Name, err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(b.String()), 0o644); err != nil {
		h.lab.t.Fatalf("netlab: resolver of %s: %v", h.Name, err)
	}
}

// Run runs a command inside the namespace to completion.
func (h *Host) Run(name string, args ...string) (string, error) {
	return h.lab.run("ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// NetnsInode is the namespace's inode, as the kernel reports it for sockets.
func (h *Host) NetnsInode() uint32 {
	var st unix.Stat_t
	if err := unix.Stat("/run/netns/"+h.NS, &st); err != nil {
		h.lab.t.Fatalf("%v", err)
	}
	return uint32(st.Ino)
}

func (h *Host) iptables(args ...string) {
	h.lab.t.Helper()
	h.lab.must("ip", append([]string{"netns", "exec", h.NS, "iptables", "-w"}, args...)...)
}

// DropEvery drops every nth TCP segment arriving for port: loss that is
// certain to hit a transfer of more than n segments. Loss on the receiver
// makes the sender retransmit; loss on the sender's own output would only
// be a local error.
func (h *Host) DropEvery(port uint16, n int) {
	h.iptables("-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprint(port),
		"-m", "statistic", "--mode", "nth", "--every", fmt.Sprint(n), "--packet", "0", "-j", "DROP")
}

// DropSYN silently drops every connection attempt to port.
func (h *Host) DropSYN(port uint16) {
	h.iptables("-A", "INPUT", "-p", "tcp", "--dport", fmt.Sprint(port), "--syn", "-j", "DROP")
}

// Sysctl sets a per-namespace sysctl such as net.ipv4.tcp_syn_retries.
func (h *Host) Sysctl(key, value string) {
	h.lab.t.Helper()
	h.lab.must("ip", "netns", "exec", h.NS, "sysctl", "-qw", key+"="+value)
}

// WaitListen waits until something listens on TCP port in the namespace.
func (h *Host) WaitListen(port uint16) {
	h.lab.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		out, _ := h.Run("ss", "-Hltn", fmt.Sprintf("sport = :%d", port))
		if strings.TrimSpace(out) != "" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	h.lab.t.Fatalf("netlab: nothing listens on %s:%d after 10s", h.Name, port)
}

func (l *Lab) cleanup() {
	l.mu.Lock()
	procs := l.procs
	l.mu.Unlock()
	for _, p := range procs {
		syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.done
		if l.t.Failed() {
			l.t.Logf("netlab: %s output:\n%s", strings.Join(p.cmd.Args[4:], " "), p.out.String())
		}
	}
	out, _ := exec.Command("ip", "netns", "list").Output()
	for _, line := range strings.Split(string(out), "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.HasPrefix(f[0], l.id+"-") {
			if _, err := l.run("ip", "netns", "del", f[0]); err != nil {
				l.t.Errorf("netlab: cleanup: %v", err)
			}
		}
	}
	dirs, _ := filepath.Glob(etcDir(l.id + "-*"))
	for _, d := range dirs {
		os.RemoveAll(d)
	}
}
