package push_test

import (
	"encoding/base64"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stratanet/strata/e2e/harness"
	"github.com/stratanet/strata/e2e/netlab"
)

// TestPushedDataMatches: what the metrics, logs and trace backends store is
// exactly what the agent saw, carrying the cluster and node labels, the
// tenant and the credentials (read from files, rotated without a restart).
func TestPushedDataMatches(t *testing.T) {
	prom := harness.StartPrometheus(t, harness.PromConfig{})
	logs := harness.StartVictoriaLogs(t)
	jaeger := harness.StartJaeger(t)
	// Prometheus and VictoriaLogs do not check credentials (and Prometheus
	// ignores tenants): the proxies in front see what the agent sends.
	mp, lp := harness.StartProxy(t, prom.Addr), harness.StartProxy(t, logs.Addr)
	secrets := t.TempDir()
	password, token := filepath.Join(secrets, "mimir-password"), filepath.Join(secrets, "loki-token")
	write := func(path, content string) {
		t.Helper()
		if err := os.WriteFile(path, []byte(content+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	write(password, "first-password")
	write(token, "first-token")
	a := startAgent(t, "--sweep-interval", "1s", "--cluster", "e2e", "--node", "node-1", "--http=on",
		"--mimir-url", "http://"+mp.Addr+"/api/v1/write", "--mimir-tenant", "team-a", "--mimir-interval", "1s",
		"--mimir-username", "strata", "--mimir-password-file", password,
		"--loki-url", "http://"+lp.Addr+"/insert/loki/api/v1/push", "--loki-tenant", logs.Tenant, "--loki-bearer-token-file", token,
		"--otlp-endpoint", jaeger.OTLP, "--otlp-insecure=on")
	lab := netlab.New(t)
	srv := lab.Host("srv", "10.244.6.3/16")
	cli := lab.Host("cli", "10.244.6.2/16")

	t.Run("counters equal the scrape", func(t *testing.T) {
		srv.Start(filepath.Join(bin, "tcpserver"), "-listen", "10.244.6.3:18080", "-request", "1000", "-reply", "2000")
		srv.WaitListen(18080)
		if r := client(t, cli, "-connect", "10.244.6.3:18080", "-count", "5", "-send", "1000", "-expect", "2000"); r.OK != 5 {
			t.Fatalf("client: %+v", r)
		}
		pair := labels{"source_workload": "tcpclient", "destination_workload": "tcpserver", "destination_port": "18080", "reporter": "client"}
		a.Expect(t, "strata_tcp_connections_total", pair.With("result", "success"), 5, 2*time.Second)
		a.Expect(t, "strata_tcp_sent_bytes_total", pair, 5000, 0)
		at := pair.With("cluster", "e2e").With("node", "node-1")
		for _, c := range []struct {
			metric string
			l      labels
			want   string
		}{
			{"strata_tcp_connections_total", at.With("result", "success"), "5"},
			{"strata_tcp_sent_bytes_total", at, "5000"},
			{"strata_tcp_received_bytes_total", at, "10000"},
		} {
			eventually(t, 30*time.Second, "Prometheus has "+promql(c.metric, c.l), func() (bool, string) {
				got := stored(t, prom, c.metric, c.l)
				return got == c.want, got
			})
		}
		// Every series of the pair, histograms included, as scraped now:
		// the next push carries the same values.
		mfs, err := a.Scrape()
		if err != nil {
			t.Fatal(err)
		}
		compared := 0
		for _, metric := range []string{"strata_tcp_connections_total", "strata_tcp_sent_bytes_total", "strata_tcp_received_bytes_total", "strata_tcp_active_connections"} {
			for _, m := range harness.Series(mfs, metric, pair) {
				l := labels{}
				for _, lp := range m.GetLabel() {
					l[lp.GetName()] = lp.GetValue()
				}
				v, _ := harness.ValueIn(t, mfs, metric, l)
				want := fmt.Sprint(v)
				l = l.With("cluster", "e2e").With("node", "node-1")
				eventually(t, 15*time.Second, "Prometheus agrees on "+promql(metric, l), func() (bool, string) {
					got := stored(t, prom, metric, l)
					return got == want, got + " want " + want
				})
				compared++
			}
		}
		if compared < 4 {
			t.Fatalf("compared %d series, want the pair's 4 at least", compared)
		}
	})

	t.Run("tenants and rotated credentials", func(t *testing.T) {
		basic := func(pw string) string { return "Basic " + base64.StdEncoding.EncodeToString([]byte("strata:"+pw)) }
		equal := func(got, want []string) bool { return fmt.Sprint(got) == fmt.Sprint(want) }
		refuse(t, cli, srv, 18091, 1) // an event, so the logs exporter pushes
		eventually(t, 20*time.Second, "both backends see the first credentials", func() (bool, string) {
			m, l := mp.Header("Authorization"), lp.Header("Authorization")
			return equal(m, []string{basic("first-password")}) && equal(l, []string{"Bearer first-token"}), fmt.Sprint(m, l)
		})
		if got := mp.Header("X-Scope-OrgID"); !equal(got, []string{"team-a"}) {
			t.Errorf("remote write tenants %q, want team-a", got)
		}
		if got := lp.Header("X-Scope-OrgID"); !equal(got, []string{logs.Tenant}) {
			t.Errorf("log push tenants %q, want %s", got, logs.Tenant)
		}
		write(password, "second-password")
		write(token, "second-token")
		refuse(t, cli, srv, 18092, 1)
		eventually(t, 20*time.Second, "both backends see the rotated credentials, without a restart", func() (bool, string) {
			m, l := mp.Header("Authorization"), lp.Header("Authorization")
			return equal(m, []string{basic("first-password"), basic("second-password")}) &&
				equal(l, []string{"Bearer first-token", "Bearer second-token"}), fmt.Sprint(m, l)
		})
		// The tenant owns its logs: another sees none of them.
		other := *logs
		other.Tenant = "7"
		if lines, err := other.Logs(`{job="strata"}`); err != nil || len(lines) != 0 {
			t.Errorf("tenant 7 sees %d lines (%v)", len(lines), err)
		}
		if lines, err := logs.Logs(`{job="strata"}`); err != nil || len(lines) == 0 {
			t.Errorf("tenant %s sees %d lines (%v)", logs.Tenant, len(lines), err)
		}
	})

	t.Run("exemplars carry the trace", func(t *testing.T) {
		srv.Start(filepath.Join(bin, "httpserver"), "-listen", "10.244.6.3:18081")
		srv.WaitListen(18081)
		const tid = "0af7651916cd43dd8448eb211c80319c"
		out, err := cli.Run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "traceparent: 00-"+tid+"-b7ad6b7169203331-01", "http://10.244.6.3:18081/traced")
		if err != nil || out != "200" {
			t.Fatalf("curl: %q %v", out, err)
		}
		sel := `strata_http_server_request_duration_seconds_bucket{route="/traced",cluster="e2e"}`
		eventually(t, 30*time.Second, "Prometheus has the exemplar", func() (bool, string) {
			ex, err := prom.Exemplars(sel)
			for _, e := range ex {
				if e.Labels["trace_id"] == tid {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%v %v", ex, err)
		})
		// Without a traceparent the agent starts a trace of its own for
		// each end (nothing links them); the server's exemplar leads to
		// the server's span.
		out, err = cli.Run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://10.244.6.3:18081/untraced")
		if err != nil || out != "200" {
			t.Fatalf("curl: %q %v", out, err)
		}
		var started string
		eventually(t, 30*time.Second, "Prometheus has the exemplar of /untraced", func() (bool, string) {
			ex, err := prom.Exemplars(`strata_http_server_request_duration_seconds_bucket{route="/untraced",cluster="e2e"}`)
			if len(ex) == 1 {
				started = ex[0].Labels["trace_id"]
			}
			return len(ex) == 1, fmt.Sprintf("%v %v", ex, err)
		})
		eventually(t, 30*time.Second, "Jaeger holds trace "+started, func() (bool, string) {
			spans := jaeger.Trace(t, started)
			names := map[string]int{}
			for _, s := range spans {
				names[fmt.Sprint(s.Tags["span.kind"], " ", s.Name)]++
			}
			return len(spans) == 1 && names["server GET /untraced"] == 1, fmt.Sprint(names)
		})
	})

	t.Run("events are the scenario's", func(t *testing.T) {
		refuse(t, cli, srv, 18090, 3)
		query := `{job="strata",cluster="e2e",node="node-1",event="connect_failed"} | unpack_logfmt | filter destination_port:=18090`
		want := regexp.MustCompile(`^source_workload=tcpclient destination_workload=unknown destination_port=18090 reporter=client source_addr=10\.244\.6\.2:\d+ destination_addr=10\.244\.6\.3:18090 error=refused errno=ECONNREFUSED$`)
		var lines []harness.LogLine
		eventually(t, 30*time.Second, "VictoriaLogs has 3 connect_failed lines", func() (bool, string) {
			lines, _ = logs.Logs(query)
			return len(lines) >= 3, fmt.Sprint(len(lines))
		})
		time.Sleep(3 * time.Second) // and no more arrive
		if lines, _ = logs.Logs(query); len(lines) != 3 {
			t.Fatalf("%d lines, want 3: %v", len(lines), lines)
		}
		for _, l := range lines {
			if !want.MatchString(l.Line) {
				t.Errorf("line %q", l.Line)
			}
			if l.Stream["namespace"] != "" || l.Stream["job"] != "strata" || l.Stream["event"] != "connect_failed" ||
				l.Stream["cluster"] != "e2e" || l.Stream["node"] != "node-1" {
				t.Errorf("stream %v", l.Stream)
			}
			if l.Fields["source_workload"] != "tcpclient" || l.Fields["destination_addr"] != "10.244.6.3:18090" || l.Fields["error"] != "refused" {
				t.Errorf("fields %v", l.Fields)
			}
		}
		// http_error: a 5xx answer, with its route, status and trace.
		srv.Start(filepath.Join(bin, "httpserver"), "-listen", "10.244.6.3:18082", "-status", "503")
		srv.WaitListen(18082)
		out, err := cli.Run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://10.244.6.3:18082/boom")
		if err != nil || out != "503" {
			t.Fatalf("curl: %q %v", out, err)
		}
		q := logsTo("http_error", "route", "/boom")
		eventually(t, 30*time.Second, "VictoriaLogs has the two http_error lines (client and server)", func() (bool, string) {
			lines, _ = logs.Logs(q)
			return len(lines) == 2, fmt.Sprint(lines)
		})
		for _, l := range lines {
			if !strings.Contains(l.Line, "method=GET route=/boom status_code=503 duration=") || !strings.Contains(l.Line, "source_workload=curl destination_workload=httpserver") {
				t.Errorf("line %q", l.Line)
			}
		}
	})

	if mfs, err := a.Scrape(); err == nil {
		for _, exp := range []string{"mimir", "loki", "tempo"} {
			if v, _ := harness.ValueIn(t, mfs, "strata_agent_export_dropped_total", labels{"exporter": exp}); v != 0 {
				t.Errorf("%s dropped %v items with a healthy backend", exp, v)
			}
		}
	}
}
