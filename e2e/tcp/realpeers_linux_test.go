package tcp_test

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratanet/strata/e2e/harness"
	"github.com/stratanet/strata/e2e/netlab"
)

// nginx and curl, as users run them: the agent names them by process and
// counts exactly the bytes curl says it sent and received.
func TestNginxAndCurl(t *testing.T) {
	a := startAgent(t, "--sweep-interval", "1s")
	lab := netlab.New(t)
	srv := lab.Host("web", "10.244.2.3/16")
	cli := lab.Host("curl", "10.244.2.2/16")

	harness.Nginx(t, srv.Start, "10.244.2.3:8090", `
		location / { return 200 "hello from nginx\n"; }
		location /missing { return 404; }`)
	srv.WaitListen(8090)

	var sent, received float64
	for _, path := range []string{"/", "/", "/missing"} {
		// curl reports its own request and response sizes: the truth to compare with.
		out, err := cli.Run("curl", "-s", "-o", "/dev/null", "-w", "%{size_request} %{size_header} %{size_download}",
			"http://10.244.2.3:8090"+path)
		if err != nil {
			t.Fatalf("curl: %v: %s", err, out)
		}
		f := strings.Fields(out)
		if len(f) != 3 {
			t.Fatalf("curl -w printed %q", out)
		}
		req, _ := strconv.Atoi(f[0])
		hdr, _ := strconv.Atoi(f[1])
		body, _ := strconv.Atoi(f[2])
		sent += float64(req)
		received += float64(hdr + body)
	}
	l := labels{"source_workload": "curl", "destination_workload": "nginx", "destination_port": "8090"}
	a.Expect(t, "strata_tcp_connections_total", l.With("reporter", "client").With("result", "success"), 3, 0)
	a.Expect(t, "strata_tcp_connections_total", l.With("reporter", "server").With("result", "success"), 3, 0)
	a.Expect(t, "strata_tcp_sent_bytes_total", l.With("reporter", "client"), sent, 0)
	a.Expect(t, "strata_tcp_received_bytes_total", l.With("reporter", "client"), received, 0)
	a.Expect(t, "strata_tcp_sent_bytes_total", l.With("reporter", "server"), received, 0)
	a.Expect(t, "strata_tcp_received_bytes_total", l.With("reporter", "server"), sent, time.Second)
}

// A connection opened before the agent starts is found by the first sweep,
// named through /proc (no connect was seen), and counted from then on only.
func TestConnectionOlderThanTheAgent(t *testing.T) {
	requireRoot(t)
	lab := netlab.New(t)
	srv := lab.Host("old-srv", "10.244.3.3/16")
	cli := lab.Host("old-cli", "10.244.3.2/16")
	const port = 8095
	server(t, srv, port, "-request", "500", "-reply", "700")
	// 12 requests, one every second: the agent joins after the first few.
	cli.Start(filepath.Join(bin, "tcpclient"), "-connect", fmt.Sprintf("%s:%d", srv.IP, port),
		"-count", "1", "-requests", "12", "-send", "500", "-expect", "700", "-hold", "1s")
	time.Sleep(2500 * time.Millisecond) // requests 1-3 happen before the agent

	a := startAgent(t, "--sweep-interval", "1s")
	l := pair(port, "client")
	a.Expect(t, "strata_tcp_active_connections", l, 1, 0)
	a.Expect(t, "strata_tcp_active_connections", pair(port, "server"), 1, 0)
	if _, ok := a.Value(t, "strata_tcp_connections_total", l.With("result", "success")); ok {
		t.Fatal("a connection the agent never saw open was counted as a new connection")
	}
	// Wait for the close, then check the bytes: whole requests after the
	// first sweep, never the ones before the agent, never all twelve.
	a.Expect(t, "strata_tcp_active_connections", l, 0, 0)
	got, _ := a.Value(t, "strata_tcp_sent_bytes_total", l)
	if int(got)%500 != 0 || got < 500*5 || got > 500*9 {
		t.Fatalf("sent bytes %v: want a whole number of requests since the agent's first sweep (5 to 9 of 12)", got)
	}
	recv, _ := a.Value(t, "strata_tcp_received_bytes_total", l)
	if recv/700 != got/500 {
		t.Fatalf("received %v for %v sent: want 700 per 500", recv, got)
	}
}
