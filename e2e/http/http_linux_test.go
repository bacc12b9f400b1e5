package http_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratanet/strata/e2e/harness"
	"github.com/stratanet/strata/e2e/netlab"
	httpprobe "github.com/stratanet/strata/probes/http"
)

const (
	serverMetric = "strata_http_server_request_duration_seconds"
	clientMetric = "strata_http_client_request_duration_seconds"
)

func nginx(t *testing.T, h *netlab.Host, port int) {
	t.Helper()
	harness.Nginx(t, h.Start, fmt.Sprintf("%s:%d", h.IP, port), `
		location = / { return 200 "home\n"; }
		location /missing { return 404; }
		location /api/users/ { return 500; }
		location /traced { return 200 "traced\n"; }
		location /items/ { return 200 "item\n"; }`)
	h.WaitListen(uint16(port))
}

// curl runs one curl with n requests to url over one connection.
func curl(t *testing.T, h *netlab.Host, n int, method, url string, extra ...string) {
	t.Helper()
	var cfg strings.Builder
	for i := 0; i < n; i++ {
		fmt.Fprintf(&cfg, "url = %q\noutput = \"/dev/null\"\n", url)
	}
	f := filepath.Join(t.TempDir(), "curl.cfg")
	os.WriteFile(f, []byte(cfg.String()), 0o644)
	args := append([]string{"-s", "-X", method, "-K", f, "-w", "%{http_code}\n"}, extra...)
	out, err := h.Run("curl", args...)
	if err != nil || strings.Count(out, "\n") != n {
		t.Fatalf("curl: %v %q", err, out)
	}
}

func pair(reporter string) labels {
	return labels{"source_workload": "curl", "destination_workload": "nginx", "reporter": reporter, "destination_port": "8080"}
}

// The same traffic twice: with spans (every request comes from the kernel
// as a record) and without (most are counted in the kernel, the counts of
// live sockets read at each sweep).
func TestHTTPGoldenSignals(t *testing.T) {
	t.Run("spans", func(t *testing.T) { goldenSignals(t, true) })
	t.Run("counted in the kernel", func(t *testing.T) { goldenSignals(t, false) })
}

func goldenSignals(t *testing.T, spans bool) {
	args := []string{"--http=on", "--http-routes", "/api/users/{user}", "--sweep-interval", "1s"}
	var jaeger *harness.Jaeger
	if spans {
		jaeger = harness.StartJaeger(t)
		args = append(args, "--otlp-endpoint", jaeger.OTLP, "--otlp-insecure=on")
	}
	a := startAgent(t, args...)
	lab := netlab.New(t)
	web := lab.Host("web", "10.244.4.3/16")
	cli := lab.Host("cli", "10.244.4.2/16")
	nginx(t, web, 8080)

	t.Run("status codes and routes on both ends", func(t *testing.T) {
		curl(t, cli, 100, "GET", "http://10.244.4.3:8080/")
		curl(t, cli, 20, "GET", "http://10.244.4.3:8080/missing")
		curl(t, cli, 10, "POST", "http://10.244.4.3:8080/api/users/42")
		for _, c := range []struct {
			metric, reporter string
		}{{serverMetric, "server"}, {clientMetric, "client"}} {
			l := pair(c.reporter)
			a.Expect(t, c.metric, l.With("method", "GET").With("status_code", "200").With("route", "/"), 100, 0)
			a.Expect(t, c.metric, l.With("method", "GET").With("status_code", "404").With("route", "/missing"), 20, 0)
			a.Expect(t, c.metric, l.With("method", "POST").With("status_code", "500").With("route", "/api/users/{user}"), 10, 0)
		}
		// No other series for this pair: nothing invented, nothing unanswered.
		mfs, _ := a.Scrape()
		if n := len(harness.Series(mfs, serverMetric, pair("server"))); n != 3 {
			t.Fatalf("%d server series, want 3", n)
		}
	})

	t.Run("identifiers in paths make one route", func(t *testing.T) {
		var cfg strings.Builder
		for i := 1; i <= 50; i++ {
			fmt.Fprintf(&cfg, "url = \"http://10.244.4.3:8080/items/%d?v=%d\"\noutput = \"/dev/null\"\n", 1000+i, i)
		}
		f := filepath.Join(t.TempDir(), "curl.cfg")
		os.WriteFile(f, []byte(cfg.String()), 0o644)
		if out, err := cli.Run("curl", "-s", "-K", f, "-w", "%{http_code}\n"); err != nil || strings.Count(out, "200\n") != 50 {
			t.Fatalf("curl: %v %q", err, out)
		}
		for _, r := range []string{"server", "client"} {
			m := map[string]string{"server": serverMetric, "client": clientMetric}[r]
			a.Expect(t, m, pair(r).With("method", "GET").With("status_code", "200").With("route", "/items/{id}"), 50, 0)
		}
	})

	t.Run("slow handler lands in buckets of 50ms and more", func(t *testing.T) {
		web.Start(filepath.Join(bin, "httpserver"), "-listen", "10.244.4.3:8081", "-delay", "50ms")
		web.WaitListen(8081)
		curl(t, cli, 10, "GET", "http://10.244.4.3:8081/slow")
		l := labels{"source_workload": "curl", "destination_workload": "httpserver", "destination_port": "8081", "route": "/slow", "status_code": "200"}
		a.Expect(t, serverMetric, l, 10, 0)
		a.Expect(t, clientMetric, l, 10, 0)
		mfs, _ := a.Scrape()
		for _, metric := range []string{serverMetric, clientMetric} {
			for _, m := range harness.Series(mfs, metric, l) {
				for _, b := range m.GetHistogram().GetBucket() {
					if b.GetUpperBound() < 0.05 && b.GetCumulativeCount() != 0 {
						t.Errorf("%s: %d requests in le=%v, want none under 50ms", metric, b.GetCumulativeCount(), b.GetUpperBound())
					}
				}
			}
		}
	})

	t.Run("traceparent joins the trace, exemplar points at it", func(t *testing.T) {
		const trace, parent = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
		curl(t, cli, 1, "GET", "http://10.244.4.3:8080/traced", "-H", "traceparent: 00-"+trace+"-"+parent+"-01")
		if spans {
			traceJoined(t, jaeger, trace, parent)
		} else {
			a.Expect(t, serverMetric, pair("server").With("route", "/traced"), 1, 0)
		}
		// The latency histogram's bucket carries the trace as an exemplar
		// (OpenMetrics exposition): without spans too, as the first request
		// of a route comes whole from the kernel.
		req, _ := http.NewRequest("GET", "http://"+a.Addr+"/metrics", nil)
		req.Header.Set("Accept", "application/openmetrics-text; version=1.0.0")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		found := false
		for _, line := range strings.Split(string(body), "\n") {
			if strings.HasPrefix(line, serverMetric+"_bucket{") && strings.Contains(line, `route="/traced"`) &&
				strings.Contains(line, `# {trace_id="`+trace+`"}`) {
				found = true
			}
		}
		if !found {
			t.Fatalf("no bucket of %s{route=\"/traced\"} carries exemplar trace_id=%s", serverMetric, trace)
		}
	})

	t.Run("one keep-alive connection, 1000 requests", func(t *testing.T) {
		records, _ := a.Value(t, "strata_agent_events_total", labels{"probe": "http"})
		out, err := cli.Run(filepath.Join(bin, "httpclient"), "-url", "http://10.244.4.3:8080/", "-n", "1000")
		if err != nil || strings.TrimSpace(out) != `{"200":1000}` {
			t.Fatalf("httpclient: %v %s", err, out)
		}
		var codes map[string]int
		json.Unmarshal([]byte(out), &codes)
		l := labels{"source_workload": "httpclient", "destination_workload": "nginx", "route": "/", "status_code": "200"}
		a.Expect(t, serverMetric, l.With("reporter", "server"), 1000, 0)
		a.Expect(t, clientMetric, l.With("reporter", "client"), 1000, 0)
		a.Expect(t, "strata_tcp_connections_total", labels{"source_workload": "httpclient", "destination_workload": "nginx",
			"reporter": "client", "result": "success"}, 1, 0)
		// Records from the kernel: one per request and end with spans; else
		// a few (each end's first, a bucket's first per sweep, the tallies).
		// The test's own scrapes of the agent are HTTP too, a few more.
		// Before 6.3 (syscall mode) the kernel pairs and tallies nothing:
		// one record per request and per response at each end.
		after, _ := a.Value(t, "strata_agent_events_total", labels{"probe": "http"})
		n := after - records
		_, syscall := a.Value(t, "strata_agent_probe_info", labels{"probe": "http", "mode": "syscall"})
		switch {
		case syscall && n < 4000, !syscall && spans && n < 2000, !syscall && !spans && n > 200:
			t.Errorf("%v HTTP records from the kernel for 1000 requests seen at both ends (spans %v, syscall mode %v)", n, spans, syscall)
		}
		t.Logf("%v HTTP records from the kernel for 1000 requests seen at both ends", n)
	})

	t.Run("a connection still open is counted too", func(t *testing.T) {
		// Its counts come with the sweep (1 s here) when the kernel counts them.
		cli.Start(filepath.Join(bin, "httpclient"), "-url", "http://10.244.4.3:8080/items/7", "-n", "200", "-hold", "60s")
		l := labels{"source_workload": "httpclient", "destination_workload": "nginx", "route": "/items/{id}", "status_code": "200"}
		a.Expect(t, serverMetric, l.With("reporter", "server"), 200, 0)
		a.Expect(t, clientMetric, l.With("reporter", "client"), 200, 2*time.Second)
	})

	t.Run("closed without an answer, and garbage, on the same port", func(t *testing.T) {
		// tcpserver -reset reads a request and aborts: no response ever.
		web.Start(filepath.Join(bin, "tcpserver"), "-listen", "10.244.4.3:8082", "-request", "16", "-reset")
		web.WaitListen(8082)
		for i := 0; i < 3; i++ {
			cli.Run("curl", "-s", "-o", "/dev/null", "http://10.244.4.3:8082/gone")
		}
		// TLS ClientHello-like bytes and random binary to the same port.
		cli.Run(filepath.Join(bin, "tcpclient"), "-connect", "10.244.4.3:8082", "-count", "3", "-send", "16", "-expect", "1", "-allow-fail")
		l := labels{"source_workload": "curl", "destination_port": "8082", "route": "/gone", "status_code": "0"}
		a.Expect(t, serverMetric, l.With("reporter", "server"), 3, 0)
		a.Expect(t, clientMetric, l.With("reporter", "client"), 3, 2*time.Second)
		mfs, _ := a.Scrape()
		if n := len(harness.Series(mfs, serverMetric, labels{"destination_port": "8082"})); n != 1 {
			t.Fatalf("%d server series on port 8082, want only the unanswered /gone", n)
		}
	})

	t.Run("the probe's mode, and spans all delivered", func(t *testing.T) {
		if spans {
			for _, m := range []string{"strata_agent_export_dropped_total", "strata_agent_export_errors_total"} {
				a.Expect(t, m, labels{"exporter": "tempo"}, 0, 0)
			}
		}
		// The packet hooks where the kernel allows them, else the socket
		// tracepoints where it has them (6.3+), else the syscall hooks.
		mode := httpprobe.Syscall
		if _, err := os.Stat("/sys/kernel/tracing/events/sock/sock_send_length"); err == nil {
			mode = httpprobe.Tracepoint
		}
		if httpprobe.PacketsSupported() == nil {
			mode = httpprobe.Packet
		}
		a.Expect(t, "strata_agent_probe_info", labels{"probe": "http", "mode": string(mode)}, 1, 0)
	})
}

// traceJoined checks the trace backend holds a server span of nginx and a
// client span of curl in trace, children of parent.
func traceJoined(t *testing.T, jaeger *harness.Jaeger, trace, parent string) {
	t.Helper()
	var spans []harness.Span
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) && len(spans) < 2 {
		spans = jaeger.Trace(t, trace)
		time.Sleep(300 * time.Millisecond)
	}
	kinds := map[string]harness.Span{}
	for _, s := range spans {
		kinds[s.Kind] = s
	}
	srv, cl := kinds["server"], kinds["client"]
	if len(spans) != 2 || srv.Service != "nginx" || cl.Service != "curl" {
		t.Fatalf("trace %s holds %+v; want a server span of nginx and a client span of curl", trace, spans)
	}
	for _, s := range spans {
		if s.TraceID != trace || s.Parent != parent || s.Name != "GET /traced" {
			t.Errorf("span %+v: want trace %s, parent %s, name GET /traced", s, trace, parent)
		}
		if s.Tags["http.request.method"] != "GET" || fmt.Sprint(s.Tags["http.response.status_code"]) != "200" ||
			s.Tags["server.address"] != "10.244.4.3" || fmt.Sprint(s.Tags["server.port"]) != "8080" {
			t.Errorf("span tags %v", s.Tags)
		}
	}
}
