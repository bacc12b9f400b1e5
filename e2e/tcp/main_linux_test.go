// Package tcp_test runs the real agent against real connections between
// network namespaces and asserts exact values scraped from /metrics.
package tcp_test

import (
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// bin holds the agent and the test tools, built once.
var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	for name, pkg := range map[string]string{
		"strata-agent": "../../agent/cmd/strata-agent",
		"tcpserver":    "../cmd/tcpserver",
		"tcpclient":    "../cmd/tcpclient",
	} {
		out, err := exec.Command("go", "build", "-o", filepath.Join(dir, name), pkg).CombinedOutput()
		if err != nil {
			fmt.Fprintf(os.Stderr, "build %s: %v\n%s", name, err, out)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("end-to-end tests must run as root in CI")
	}
	t.Skip("needs root")
}

// agent is a running strata-agent.
type agent struct {
	addr string
	cmd  *exec.Cmd
	log  *bytes.Buffer
}

func freePort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func startAgent(t *testing.T, args ...string) *agent {
	requireRoot(t)
	a := &agent{addr: freePort(t), log: &bytes.Buffer{}}
	a.cmd = exec.Command(filepath.Join(bin, "strata-agent"),
		append([]string{"--kubernetes=off", "--metrics-addr", a.addr, "--log-level", "debug"}, args...)...)
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
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := a.scrape(); err == nil {
			return a
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not serve /metrics within 30s:\n%s", a.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (a *agent) scrape() (map[string]*dto.MetricFamily, error) {
	resp, err := http.Get("http://" + a.addr + "/metrics")
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

// labels are the series to look for: every given label must match.
type labels map[string]string

func (l labels) with(k, v string) labels {
	out := labels{}
	for a, b := range l {
		out[a] = b
	}
	out[k] = v
	return out
}

// value returns the value of the one series of metric matching want
// (histograms: the sample count), and whether it exists.
func (a *agent) value(t *testing.T, metric string, want labels) (float64, bool) {
	t.Helper()
	mfs, err := a.scrape()
	if err != nil {
		t.Fatalf("scrape: %v", err)
	}
	return valueIn(t, mfs, metric, want)
}

func valueIn(t *testing.T, mfs map[string]*dto.MetricFamily, metric string, want labels) (float64, bool) {
	t.Helper()
	mf := mfs[metric]
	if mf == nil {
		return 0, false
	}
	var found []float64
	for _, m := range mf.GetMetric() {
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
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			found = append(found, m.Counter.GetValue())
		case m.Gauge != nil:
			found = append(found, m.Gauge.GetValue())
		case m.Histogram != nil:
			found = append(found, float64(m.Histogram.GetSampleCount()))
		}
	}
	if len(found) > 1 {
		t.Fatalf("%s%v matches %d series; the test must name one", metric, want, len(found))
	}
	if len(found) == 0 {
		return 0, false
	}
	return found[0], true
}

// eventually waits until metric{want} equals v, then checks it stays there
// over another wait (no double counting by a later sweep or close).
func (a *agent) expect(t *testing.T, metric string, want labels, v float64, settle time.Duration) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got float64
	var ok bool
	for time.Now().Before(deadline) {
		if got, ok = a.value(t, metric, want); ok && got == v {
			break
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !ok || got != v {
		if mfs, err := a.scrape(); err == nil {
			for _, m := range mfs["strata_agent_events_total"].GetMetric() {
				t.Logf("events_total %v", m)
			}
		}
		t.Fatalf("%s%v = %v (present %v), want %v", metric, want, got, ok, v)
	}
	time.Sleep(settle)
	if got, _ = a.value(t, metric, want); got != v {
		t.Fatalf("%s%v moved to %v after settling, want %v", metric, want, got, v)
	}
}

func (l labels) String() string {
	var parts []string
	for k, v := range l {
		parts = append(parts, k+"="+v)
	}
	return "{" + strings.Join(parts, ",") + "}"
}
