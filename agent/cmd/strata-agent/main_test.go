package main

import (
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

var agentBin string

// testVersion is stamped in as make build stamps git describe.
const testVersion = "v0.0.0-7-gabc1234-test"

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-cli-")
	if err != nil {
		panic(err)
	}
	agentBin = filepath.Join(dir, "strata-agent")
	if out, err := exec.Command("go", "build", "-ldflags", "-X github.com/stratanet/strata/agent.Version="+testVersion, "-o", agentBin, ".").CombinedOutput(); err != nil {
		os.Stderr.Write(out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// run returns the exit code and stderr of the agent.
func run(t *testing.T, env []string, wrap []string, args ...string) (int, string) {
	t.Helper()
	argv := append(append(wrap, agentBin), args...)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		return exit.ExitCode(), stderr.String()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0, stderr.String()
}

// needRoot: these cases are behind the privilege check. In CI a skip would
// hide a regression, so there it fails.
func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("must run as root in CI")
	}
	t.Skip("needs root to get past the privilege check")
}

func TestBadInputExitsTwoWithOneLine(t *testing.T) {
	cases := []struct {
		env  []string
		args []string
		want string
	}{
		{nil, []string{"--kubernetes=maybe"}, `"maybe"`},
		{nil, []string{"--metrics-addr", "9810"}, "HOST:PORT"},
		{nil, []string{"--sweep-interval", "fast"}, `"fast"`},
		{nil, []string{"extra"}, `unexpected argument "extra"`},
		{[]string{"STRATA_SWEEP_INTERVAL=100ms"}, nil, "STRATA_SWEEP_INTERVAL"},
		{[]string{"STRATA_CONFIG=/nonexistent/strata.yaml"}, nil, "/nonexistent/strata.yaml"},
	}
	for _, c := range cases {
		code, stderr := run(t, c.env, nil, c.args...)
		if code != 2 {
			t.Errorf("%v %v: exit %d, want 2 (%s)", c.env, c.args, code, stderr)
		}
		lines := strings.Split(strings.TrimSpace(stderr), "\n")
		if !strings.Contains(stderr, c.want) || !strings.HasPrefix(lines[len(lines)-1], "strata-agent: ") {
			t.Errorf("%v %v: stderr %q, want a strata-agent: line naming %s", c.env, c.args, stderr, c.want)
		}
	}
}

// Kubernetes asked for but not reachable is an error at start, saying
// why, rather than an agent that runs without the names it was asked for.
func TestKubernetesWithoutAClusterIsRefusedClearly(t *testing.T) {
	needRoot(t)
	code, stderr := run(t, nil, nil, "--kubernetes=on", "--metrics-addr", "127.0.0.1:0")
	if code != 2 || !strings.Contains(stderr, "no Kubernetes API server") || !strings.Contains(stderr, "kubeconfig") {
		t.Errorf("no cluster: exit %d, stderr %q; want 2 and the reason", code, stderr)
	}
	// A kubeconfig naming a port nobody listens on.
	kc := filepath.Join(t.TempDir(), "kubeconfig")
	os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600)
	code, stderr = run(t, nil, nil, "--kubernetes=on", "--kubeconfig", kc, "--metrics-addr", "127.0.0.1:0")
	if code != 1 || !strings.Contains(stderr, "kubernetes API server https://127.0.0.1:1") || !strings.Contains(stderr, "connection refused") {
		t.Errorf("unreachable API server: exit %d, stderr %q; want 1 and the server's address", code, stderr)
	}
}

func TestVersion(t *testing.T) {
	out, err := exec.Command(agentBin, "--version").Output()
	want := "strata-agent " + testVersion + " " + runtime.Version() + "\n"
	if err != nil || string(out) != want {
		t.Fatalf("--version: %q, %v; want %q", out, err, want)
	}
}

func TestHelpExitsZero(t *testing.T) {
	code, stderr := run(t, nil, nil, "--help")
	if code != 0 || !strings.Contains(stderr, "-sweep-interval") || !strings.Contains(stderr, "STRATA_") {
		t.Fatalf("exit %d, usage %q", code, stderr)
	}
}

// Without privileges the agent names what is missing and exits 3. As root
// the test drops to nobody with no capabilities.
func TestUnprivilegedNamesTheCapability(t *testing.T) {
	var wrap []string
	if os.Geteuid() == 0 {
		setpriv, err := exec.LookPath("setpriv")
		if err != nil {
			t.Fatalf("setpriv (util-linux) is needed to drop privileges: %v", err)
		}
		wrap = []string{setpriv, "--reuid=65534", "--regid=65534", "--clear-groups", "--inh-caps=-all", "--bounding-set=-all"}
	}
	code, stderr := run(t, nil, wrap, "--kubernetes=off", "--metrics-addr", "127.0.0.1:0")
	if code != 3 || !strings.Contains(stderr, "CAP_SYS_ADMIN") {
		t.Fatalf("exit %d, stderr %q; want 3 naming CAP_SYS_ADMIN", code, stderr)
	}
}

func TestTakenMetricsPortIsClear(t *testing.T) {
	needRoot(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	code, stderr := run(t, nil, nil, "--kubernetes=off", "--metrics-addr", ln.Addr().String())
	if code != 1 || !strings.Contains(stderr, "address already in use") || !strings.Contains(stderr, ln.Addr().String()) {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
}
