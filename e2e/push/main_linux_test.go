// Package push_test runs the real agent against real servers that speak its
// backends' protocols — Prometheus for Mimir (remote write), VictoriaLogs for
// Loki (push API), Jaeger for Tempo (OTLP gRPC) — reads what they stored back
// through their own query APIs, and takes the backends away in every way
// they fail in production. (Mimir, Loki and Tempo are AGPL: not used here.)
package push_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratanet/strata/e2e/harness"
	"github.com/stratanet/strata/e2e/netlab"
)

var bin string

func TestMain(m *testing.M) {
	harness.Main(m, &bin, map[string]string{
		"strata-agent": "../../agent/cmd/strata-agent",
		"tcpserver":    "../cmd/tcpserver",
		"tcpclient":    "../cmd/tcpclient",
		"httpserver":   "../cmd/httpserver",
	})
}

type labels = harness.Labels

func startAgent(t *testing.T, args ...string) *harness.Agent {
	return harness.StartAgent(t, filepath.Join(bin, "strata-agent"), args...)
}

// result is what tcpclient prints.
type result struct {
	OK, Failed     int
	Errors         []string
	Sent, Received int64
}

func client(t *testing.T, h *netlab.Host, args ...string) result {
	t.Helper()
	out, err := h.Run(filepath.Join(bin, "tcpclient"), args...)
	if err != nil {
		t.Fatalf("tcpclient %v: %v\n%s", args, err, out)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	var r result
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &r); err != nil {
		t.Fatalf("tcpclient output %q: %v", out, err)
	}
	return r
}

// refuse makes n connects to a port nobody listens on.
func refuse(t *testing.T, cli, srv *netlab.Host, port, n int) {
	t.Helper()
	if r := client(t, cli, "-connect", fmt.Sprintf("%s:%d", srv.IP, port), "-count", fmt.Sprint(n), "-allow-fail"); r.Failed != n {
		t.Fatalf("client: %+v, want %d failed", r, n)
	}
}

// eventually polls check until it reports done or the time is up.
func eventually(t *testing.T, within time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for {
		ok, state := check()
		if ok {
			return
		}
		last = state
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, within, last)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

// promql renders a selector from labels.
func promql(metric string, l labels) string {
	var parts []string
	for k, v := range l {
		parts = append(parts, fmt.Sprintf("%s=%q", k, v))
	}
	return metric + "{" + strings.Join(parts, ",") + "}"
}

// scraped is the agent's value of one series, which must exist.
func scraped(t *testing.T, a *harness.Agent, metric string, l labels) float64 {
	t.Helper()
	v, ok := a.Value(t, metric, l)
	if !ok {
		t.Fatalf("no %s%v on /metrics", metric, l)
	}
	return v
}

// stored is Prometheus's latest value of one series ("" when it has none).
func stored(t *testing.T, m *harness.Prometheus, metric string, l labels) string {
	t.Helper()
	s, err := m.Query(promql(metric, l))
	if err != nil {
		t.Logf("query: %v", err)
		return ""
	}
	switch len(s) {
	case 0:
		return ""
	case 1:
		return s[0].Value
	}
	for _, x := range s {
		t.Logf("  %v = %s", x.Labels, x.Value)
	}
	t.Fatalf("%s%v matches %d series in Prometheus", metric, l, len(s))
	return ""
}

// logLines counts the agent's log lines holding every given fragment.
func logLines(a *harness.Agent, fragments ...string) int {
	n := 0
	for _, line := range strings.Split(a.Log(), "\n") {
		all := true
		for _, f := range fragments {
			all = all && strings.Contains(line, f)
		}
		if all {
			n++
		}
	}
	return n
}

// logsTo is the LogsQL query for the agent's events of one kind whose
// logfmt line has field=value.
func logsTo(event, field, value string) string {
	return fmt.Sprintf(`{job="strata",event=%q} | unpack_logfmt | filter %s:=%q`, event, field, value)
}

// grep is the agent's log lines holding fragment.
func grep(a *harness.Agent, fragment string) string {
	var out []string
	for _, line := range strings.Split(a.Log(), "\n") {
		if strings.Contains(line, fragment) {
			out = append(out, line)
		}
	}
	return strings.Join(out, "\n")
}
