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
	request := func(traceID string, n int) {
		t.Helper()
		for i := 0; i < n; i++ {
			out, err := cli.Run("curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H", "traceparent: 00-"+traceID+"-b7ad6b7169203331-01", "http://10.244.9.3:18084/traced")
			if err != nil || out != "200" {
				t.Fatalf("curl: %q %v", out, err)
			}
		}
	}
	traced := func(traceID string) {
		t.Helper()
		eventually(t, 30*time.Second, "Jaeger holds the server and client spans of "+traceID, func() (bool, string) {
			spans := jaeger.Trace(t, traceID)
			kinds := map[string]int{}
			for _, s := range spans {
				kinds[fmt.Sprint(s.Tags["span.kind"])]++
			}
			// One server and one client span per request made with it.
			return kinds["server"] > 0 && kinds["server"] == kinds["client"] && len(spans) == 2*kinds["server"], fmt.Sprint(kinds)
		})
	}
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
