package push_test

import (
	"fmt"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stratanet/strata/e2e/harness"
	"github.com/stratanet/strata/e2e/netlab"
)

// TestPushedDataMatches: what Mimir and Loki store is exactly what the agent
// saw, carrying the cluster and node labels and the tenant.
func TestPushedDataMatches(t *testing.T) {
	mimir := harness.StartMimir(t)
	loki := harness.StartLoki(t)
	a := startAgent(t, "--sweep-interval", "1s", "--cluster", "e2e", "--node", "node-1", "--http=on",
		"--mimir-url", "http://"+mimir.Addr+"/api/v1/push", "--mimir-tenant", mimir.Tenant, "--mimir-interval", "1s",
		"--loki-url", "http://"+loki.Addr+"/loki/api/v1/push", "--loki-tenant", loki.Tenant)
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
			eventually(t, 30*time.Second, "Mimir has "+promql(c.metric, c.l), func() (bool, string) {
				got := stored(t, mimir, c.metric, c.l)
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
				eventually(t, 15*time.Second, "Mimir agrees on "+promql(metric, l), func() (bool, string) {
					got := stored(t, mimir, metric, l)
					return got == want, got + " want " + want
				})
				compared++
			}
		}
		if compared < 4 {
			t.Fatalf("compared %d series, want the pair's 4 at least", compared)
		}
		// The tenant is the data's owner: another tenant sees nothing.
		other := *mimir
		other.Tenant = "team-b"
		if s, err := other.Query(promql("strata_tcp_sent_bytes_total", at)); err != nil || len(s) != 0 {
			t.Fatalf("tenant team-b sees %v (%v)", s, err)
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
		eventually(t, 30*time.Second, "Mimir has the exemplar", func() (bool, string) {
			ex, err := mimir.Exemplars(sel)
			for _, e := range ex {
				if e.Labels["trace_id"] == tid {
					return true, ""
				}
			}
			return false, fmt.Sprintf("%v %v", ex, err)
		})
	})

	t.Run("events are the scenario's", func(t *testing.T) {
		refuse(t, cli, srv, 18090, 3)
		query := `{job="strata", cluster="e2e", node="node-1", event="connect_failed"} |= "destination_port=18090"`
		want := regexp.MustCompile(`^source_workload=tcpclient destination_workload=unknown destination_port=18090 reporter=client source_addr=10\.244\.6\.2:\d+ destination_addr=10\.244\.6\.3:18090 error=refused errno=ECONNREFUSED$`)
		var lines []harness.LogLine
		eventually(t, 30*time.Second, "Loki has 3 connect_failed lines", func() (bool, string) {
			lines, _ = loki.Logs(query)
			return len(lines) >= 3, fmt.Sprint(len(lines))
		})
		time.Sleep(3 * time.Second) // and no more arrive
		if lines, _ = loki.Logs(query); len(lines) != 3 {
			t.Fatalf("%d lines, want 3: %v", len(lines), lines)
		}
		for _, l := range lines {
			if !want.MatchString(l.Line) {
				t.Errorf("line %q", l.Line)
			}
			if l.Stream["namespace"] != "" || l.Stream["job"] != "strata" || l.Stream["event"] != "connect_failed" {
				t.Errorf("stream %v", l.Stream)
			}
		}
		// http_error: a 5xx answer, with its route, status and trace.
		srv.Start(filepath.Join(bin, "httpserver"), "-listen", "10.244.6.3:18082", "-status", "503")
		srv.WaitListen(18082)
		out, err := cli.Run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "http://10.244.6.3:18082/boom")
		if err != nil || out != "503" {
			t.Fatalf("curl: %q %v", out, err)
		}
		q := `{job="strata", event="http_error"} |= "route=/boom"`
		eventually(t, 30*time.Second, "Loki has the two http_error lines (client and server)", func() (bool, string) {
			lines, _ = loki.Logs(q)
			return len(lines) == 2, fmt.Sprint(lines)
		})
		for _, l := range lines {
			if !strings.Contains(l.Line, "method=GET route=/boom status_code=503 duration=") || !strings.Contains(l.Line, "source_workload=curl destination_workload=httpserver") {
				t.Errorf("line %q", l.Line)
			}
		}
	})

	if mfs, err := a.Scrape(); err == nil {
		for _, exp := range []string{"mimir", "loki"} {
			if v, _ := harness.ValueIn(t, mfs, "strata_agent_export_dropped_total", labels{"exporter": exp}); v != 0 {
				t.Errorf("%s dropped %v items with a healthy backend", exp, v)
			}
		}
	}
}
