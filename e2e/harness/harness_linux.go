// Package harness runs the real agent for end-to-end tests and reads its
// /metrics back: exact values of named series, waited for and then checked
// to stay put.
package harness

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Build compiles main packages (name -> package path) into dir.
//
// With STRATA_E2E_BIN set, each is copied from that directory instead,
// found under its package directory's name (e2e/kernels builds them
// beforehand: its VMs are too slow to compile).
func Build(dir string, pkgs map[string]string) error {
	if pre := os.Getenv("STRATA_E2E_BIN"); pre != "" {
		for name, pkg := range pkgs {
			b, err := os.ReadFile(filepath.Join(pre, filepath.Base(pkg)))
			if err == nil {
				err = os.WriteFile(filepath.Join(dir, name), b, 0o755)
			}
			if err != nil {
				return fmt.Errorf("STRATA_E2E_BIN: %w", err)
			}
		}
		return nil
	}
	for name, pkg := range pkgs {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			return fmt.Errorf("build %s: %v\n%s", name, err, out)
		}
	}
	return nil
}

// RequireRoot skips locally but fails in CI, where a skip would hide a regression.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("end-to-end tests must run as root in CI")
	}
	t.Skip("needs root")
}

// Agent is a running strata-agent.
type Agent struct {
	Addr string
	cmd  *exec.Cmd
	log  *lockedBuffer
}

// StartAgent runs the agent binary in standalone mode on a free port and
// waits until it serves /metrics. It is stopped when the test ends.
func StartAgent(t *testing.T, binary string, args ...string) *Agent {
	RequireRoot(t)
	a := &Agent{Addr: FreeAddr(t), log: &lockedBuffer{}}
	a.cmd = exec.Command(binary, append([]string{"--kubernetes=off", "--metrics-addr", a.Addr, "--log-level", "debug"}, args...)...)
	a.cmd.Stdout, a.cmd.Stderr = a.log, a.log
	if err := a.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if t.Failed() && os.Getenv("STRATA_E2E_DUMP") != "" {
			a.cmd.Process.Signal(syscall.SIGQUIT) // goroutine dump into the log
		}
		a.cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { a.cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			a.cmd.Process.Kill()
			<-done
			t.Error("agent did not stop within 10s of SIGTERM")
		}
		if t.Failed() {
			t.Logf("agent log:\n%s", a.log.String())
		}
	})
	// Ready, not merely serving: the agent answers /metrics while its
	// probes still load, and traffic sent then is never seen.
	deadline := time.Now().Add(30 * time.Second)
	for {
		err := Ready(a.Addr)
		if err == nil {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent not ready within 30s (%v):\n%s", err, a.log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Ready asks the agent at addr once whether it is ready (/readyz: probes
// loaded, event loop turning, informers synced); the error says why not.
func Ready(addr string) error {
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%d %s", resp.StatusCode, b)
	}
	return nil
}

// Scrape reads /metrics once.
func (a *Agent) Scrape() (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get("http://" + a.Addr + "/metrics")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	return parser.TextToMetricFamilies(resp.Body)
}

// Labels select a series: every given label must match.
type Labels map[string]string

// With returns a copy with one more label.
func (l Labels) With(k, v string) Labels {
	out := Labels{}
	for a, b := range l {
		out[a] = b
	}
	out[k] = v
	return out
}

func (l Labels) String() string {
	var parts []string
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, ",") + "}"
}

// Value of the one series of metric matching want (histograms: the sample count).
func (a *Agent) Value(t *testing.T, metric string, want Labels) (float64, bool) {
	t.Helper()
	mfs, err := a.Scrape()
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return ValueIn(t, mfs, metric, want)
}

// Series returns every series of metric matching want.
func Series(mfs map[string]*dto.MetricFamily, metric string, want Labels) []*dto.Metric {
	var out []*dto.Metric
	for _, m := range mfs[metric].GetMetric() {
		have := map[string]string{}
		for _, lp := range m.GetLabel() {
			have[lp.GetName()] = lp.GetValue()
		}
		match := true
		for k, v := range want {
			if have[k] != v {
				match = false
			}
		}
		if match {
			out = append(out, m)
		}
	}
	return out
}

// ValueIn is Value on a scrape already made.
func ValueIn(t *testing.T, mfs map[string]*dto.MetricFamily, metric string, want Labels) (float64, bool) {
	t.Helper()
	found := Series(mfs, metric, want)
	if len(found) > 1 {
		t.Fatalf("%s%v matches %d series; the test must name one", metric, want, len(found))
	}
	if len(found) == 0 {
		return 0, false
	}
	m := found[0]
	switch {
	case m.Counter != nil:
		return m.Counter.GetValue(), true
	case m.Gauge != nil:
		return m.Gauge.GetValue(), true
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount()), true
	}
	return 0, false
}

// Expect waits until metric{want} equals v, then checks it still does after
// settle (nothing counted twice by a later sweep or close).
func (a *Agent) Expect(t *testing.T, metric string, want Labels, v float64, settle time.Duration) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got float64
	var ok bool
	for time.Now().Before(deadline) {
		if got, ok = a.Value(t, metric, want); ok && got == v {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !ok || got != v {
		if mfs, err := a.Scrape(); err == nil {
			for _, m := range Series(mfs, metric, nil) {
				l := Labels{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				v, _ := ValueIn(t, map[string]*dto.MetricFamily{metric: {Metric: []*dto.Metric{m}}}, metric, nil)
				t.Logf("present: %s%v %v", metric, l, v)
			}
			// The agent's own counters say where records went.
			for name, mf := range mfs {
				if !strings.HasPrefix(name, "strata_agent_") {
					continue
				}
				for _, m := range mf.GetMetric() {
					v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
					if v == 0 {
						continue
					}
					l := Labels{}
					for _, lp := range m.GetLabel() {
						l[lp.GetName()] = lp.GetValue()
					}
					t.Logf("agent: %s%v %v", name, l, v)
				}
			}
		}
		t.Fatalf("%s%v = %v (present %v), want %v", metric, want, got, ok, v)
	}
	time.Sleep(settle)
	if got, _ = a.Value(t, metric, want); got != v {
		t.Fatalf("%s%v moved to %v after settling, want %v", metric, want, got, v)
	}
}

// Main builds the given main packages (name -> path) into a temporary
// directory, runs the package's tests with it in *dir, and removes it.
func Main(m *testing.M, dir *string, pkgs map[string]string) {
	d, err := os.MkdirTemp("", "strata-e2e-")
	if err == nil {
		err = Build(d, pkgs)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(d)
		os.Exit(1)
	}
	*dir = d
	code := m.Run()
	os.RemoveAll(d)
	os.Exit(code)
}

// Nginx runs Debian's nginx in a namespace until the test ends, listening
// on addr with the given server-block locations.
func Nginx(t *testing.T, start func(name string, args ...string) *exec.Cmd, addr string, locations string) {
	t.Helper()
	dir := t.TempDir()
	conf := filepath.Join(dir, "nginx.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf(`
worker_processes 1;
daemon off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path %[1]s; proxy_temp_path %[1]s; fastcgi_temp_path %[1]s;
	uwsgi_temp_path %[1]s; scgi_temp_path %[1]s;
	server {
		listen %[2]s;
		%[3]s
	}
}
`, dir, addr, locations)), 0o644)
	start("nginx", "-c", conf)
}

// RSS is the agent's resident memory in bytes.
func (a *Agent) RSS() (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.cmd.Process.Pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && f[0] == "VmRSS:" {
			kb, err := strconv.ParseInt(f[1], 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no VmRSS in /proc/%d/status", a.cmd.Process.Pid)
}

// Pid is the agent's process.
func (a *Agent) Pid() int { return a.cmd.Process.Pid }

// Log is what the agent wrote so far.
func (a *Agent) Log() string { return a.log.String() }
