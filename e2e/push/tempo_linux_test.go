package push_test

import (
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stratanet/strata/e2e/harness"
	"github.com/stratanet/strata/e2e/netlab"
)

// TestTraceBackendOutage: the OTLP backend is down when the agent starts and
// is killed later; requests made while it is back are traced, the rest are
// counted as dropped, and each outage is said once.
func TestTraceBackendOutage(t *testing.T) {
	jaeger := harness.NewJaeger(t)
	a := startAgent(t, "--http=on", "--otlp-endpoint", jaeger.OTLP, "--otlp-insecure=on", "--otlp-queue", "100")
	lab := netlab.New(t)
	srv := lab.Host("srv", "10.244.9.3/16")
	cli := lab.Host("cli", "10.244.9.2/16")
	srv.Start(filepath.Join(bin, "httpserver"), "-listen", "10.244.9.3:18084")
	srv.WaitListen(18084)
	request := func(traceID string, n int) { curlTraced(t, cli, "http://10.244.9.3:18084/traced", traceID, n) }
	traced := func(traceID string) { tracedIn(t, jaeger, traceID) }
	queues := map[string]float64{"tempo": 100}

	request("11111111111111111111111111111111", 5)
	eventually(t, 30*time.Second, "tempo reports errors", func() (bool, string) {
		v := counter(t, a, "strata_agent_export_errors_total", "tempo")
		return v > 0, fmt.Sprint(v)
	})
	hold(t, a, 2*time.Second, queues)
	jaeger.Start()
	const second = "22222222222222222222222222222222"
	eventually(t, 60*time.Second, "spans flow again", func() (bool, string) {
		request(second, 1)
		time.Sleep(2 * time.Second)
		return len(jaeger.Trace(t, second)) > 0, ""
	})
	// A request of the probes above may have lost one of its spans to the
	// exporter's last failed batch; requests made once spans flow lose none.
	const back = "25252525252525252525252525252525"
	request(back, 3)
	traced(back)

	jaeger.Stop()
	request("33333333333333333333333333333333", 5)
	hold(t, a, 20*time.Second, queues)
	jaeger.Start()
	const fourth = "44444444444444444444444444444444"
	eventually(t, 60*time.Second, "spans flow after the restart", func() (bool, string) {
		request(fourth, 1)
		time.Sleep(2 * time.Second)
		return len(jaeger.Trace(t, fourth)) > 0, ""
	})
	const restarted = "45454545454545454545454545454545"
	request(restarted, 3)
	traced(restarted)

	if v := counter(t, a, "strata_agent_export_dropped_total", "tempo"); v == 0 {
		t.Error("no span counted as dropped across two outages")
	}
	backend := "spans to " + jaeger.OTLP
	oncePerCondition(t, a, backend)
	if got := logLines(a, "sending "+backend+" again"); got != 2 {
		t.Errorf("%d recovery lines, want 2:\n%s", got, grep(a, backend))
	}
}

// curlTraced makes n requests carrying a traceparent of traceID.
func curlTraced(t *testing.T, cli *netlab.Host, url, traceID string, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		out, err := cli.Run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "traceparent: 00-"+traceID+"-b7ad6b7169203331-01", url)
		if err != nil || out != "200" {
			t.Fatalf("curl: %q %v", out, err)
		}
	}
}

// spanKinds counts a trace's spans by kind.
func spanKinds(t *testing.T, jaeger *harness.Jaeger, traceID string) map[string]int {
	kinds := map[string]int{}
	for _, s := range jaeger.Trace(t, traceID) {
		kinds[s.Kind]++
	}
	return kinds
}

// tracedIn waits until Jaeger holds a server and a client span for each
// request made with traceID, and nothing else.
func tracedIn(t *testing.T, jaeger *harness.Jaeger, traceID string) {
	t.Helper()
	eventually(t, 30*time.Second, "Jaeger holds the server and client spans of "+traceID, func() (bool, string) {
		kinds := spanKinds(t, jaeger, traceID)
		return kinds["server"] > 0 && kinds["server"] == kinds["client"] && len(kinds) == 2, fmt.Sprint(kinds)
	})
}

// TestTraceBackendFaults: the OTLP backend answers Unavailable (a 500) for a
// while, refuses with InvalidArgument (a 400), and accepts but never
// answers — through a gRPC proxy in front of Jaeger, which also sees the
// tenant.
func TestTraceBackendFaults(t *testing.T) {
	jaeger := harness.StartJaeger(t)
	p := harness.StartOTLPProxy(t, jaeger.OTLP)
	// (A bearer token is refused over plaintext, so this proxy sees none.)
	a := startAgent(t, "--http=on", "--otlp-endpoint", p.Addr, "--otlp-insecure=on", "--otlp-queue", "1000", "--otlp-tenant", "team-a")
	lab := netlab.New(t)
	srv := lab.Host("srv", "10.244.11.3/16")
	cli := lab.Host("cli", "10.244.11.2/16")
	srv.Start(filepath.Join(bin, "httpserver"), "-listen", "10.244.11.3:18085")
	srv.WaitListen(18085)
	request := func(traceID string, n int) { curlTraced(t, cli, "http://10.244.11.3:18085/traced", traceID, n) }
	queues := map[string]float64{"tempo": 1000}
	backend := "spans to " + p.Addr

	request("a0000000000000000000000000000000", 2)
	tracedIn(t, jaeger, "a0000000000000000000000000000000")
	if got := p.Header("X-Scope-OrgID"); fmt.Sprint(got) != "[team-a]" {
		t.Errorf("tenants %q, want team-a", got)
	}

	t.Run("500 for a while", func(t *testing.T) {
		p.Set(harness.Status500)
		const id = "b0000000000000000000000000000000"
		request(id, 3)
		hold(t, a, 5*time.Second, queues)
		p.Set(harness.Pass)
		// Retried, not lost: all three requests' spans arrive.
		eventually(t, 30*time.Second, "Jaeger holds the 6 spans of "+id, func() (bool, string) {
			kinds := spanKinds(t, jaeger, id)
			return kinds["server"] == 3 && kinds["client"] == 3, fmt.Sprint(kinds)
		})
		if p.Repeats(harness.Status500) == 0 {
			t.Error("a batch that got Unavailable was never retried")
		}
		if got := logLines(a, "cannot send "+backend, `"condition": "gRPC Unavailable"`); got != 1 {
			t.Errorf("%d lines with gRPC Unavailable, want 1:\n%s", got, grep(a, backend))
		}
	})

	t.Run("400 is dropped, not retried", func(t *testing.T) {
		before := counter(t, a, "strata_agent_export_dropped_total", "tempo")
		p.Set(harness.Status400)
		const id = "c0000000000000000000000000000000"
		request(id, 2)
		eventually(t, 10*time.Second, "the spans are refused", func() (bool, string) {
			return p.Requests(harness.Status400) > 0, ""
		})
		hold(t, a, 3*time.Second, queues)
		p.Set(harness.Pass)
		if got := counter(t, a, "strata_agent_export_dropped_total", "tempo") - before; got < 4 {
			t.Errorf("%v spans dropped on InvalidArgument, want the 2 requests' 4 at least", got)
		}
		if n := p.Repeats(harness.Status400); n != 0 {
			t.Errorf("%d batches sent again after InvalidArgument", n)
		}
		if got := len(jaeger.Trace(t, id)); got != 0 {
			t.Errorf("Jaeger holds %d spans the proxy refused", got)
		}
		if got := logLines(a, "cannot send "+backend, `"condition": "gRPC InvalidArgument"`); got != 1 {
			t.Errorf("%d lines with gRPC InvalidArgument, want 1:\n%s", got, grep(a, backend))
		}
		const after = "c1000000000000000000000000000000"
		request(after, 1) // and spans flow again
		tracedIn(t, jaeger, after)
	})

	t.Run("accepts but never answers", func(t *testing.T) {
		before := counter(t, a, "strata_agent_export_dropped_total", "tempo")
		p.Set(harness.Silent)
		request("d0000000000000000000000000000000", 2)
		hold(t, a, 30*time.Second, queues)
		if got := counter(t, a, "strata_agent_export_dropped_total", "tempo") - before; got < 4 {
			t.Errorf("%v spans dropped while the backend never answered, want the 2 requests' 4 at least", got)
		}
		p.Set(harness.Pass)
		const id = "e0000000000000000000000000000000"
		eventually(t, 60*time.Second, "spans flow again", func() (bool, string) {
			request(id, 1)
			time.Sleep(2 * time.Second)
			return len(jaeger.Trace(t, id)) > 0, ""
		})
		if got := logLines(a, "cannot send "+backend, `"condition": "timeout"`); got != 1 {
			t.Errorf("%d lines with a timeout, want 1:\n%s", got, grep(a, backend))
		}
	})
	oncePerCondition(t, a, backend)
	if got := logLines(a, "sending "+backend+" again"); got != 3 {
		t.Errorf("%d recovery lines, want 3:\n%s", got, grep(a, backend))
	}
}
