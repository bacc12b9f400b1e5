package tcp_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stratanet/strata/e2e/harness"
	"github.com/stratanet/strata/e2e/netlab"
)

const sweep = time.Second

// result is what tcpclient prints.
type result struct {
	OK, Failed     int
	Errors         []string
	Sent, Received int64
}

func client(t *testing.T, h *netlab.Host, args ...string) result {
	t.Helper()
	r, err := runClient(h, args...)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// runClient runs tcpclient and reads its result; safe off the test's
// goroutine (t.Fatal is not).
func runClient(h *netlab.Host, args ...string) (result, error) {
	var r result
	out, err := h.Run(filepath.Join(bin, "tcpclient"), args...)
	if err != nil {
		return r, fmt.Errorf("tcpclient %v: %v\n%s", args, err, out)
	}
	if err := json.Unmarshal([]byte(lastLine(out)), &r); err != nil {
		return r, fmt.Errorf("tcpclient output %q: %v", out, err)
	}
	return r, nil
}

func lastLine(s string) string {
	for len(s) > 0 && s[len(s)-1] == '\n' {
		s = s[:len(s)-1]
	}
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] == '\n' {
			return s[i+1:]
		}
	}
	return s
}

func server(t *testing.T, h *netlab.Host, port uint16, args ...string) {
	t.Helper()
	h.Start(filepath.Join(bin, "tcpserver"), append([]string{"-listen", fmt.Sprintf("%s:%d", h.IP, port)}, args...)...)
	h.WaitListen(port)
}

// pair is the series of one client->server conversation, seen from one end.
func pair(port uint16, reporter string) labels {
	return labels{
		"source_namespace": "", "source_workload": "tcpclient",
		"destination_namespace": "", "destination_workload": "tcpserver", "destination_service": "",
		"destination_port": strconv.Itoa(int(port)), "reporter": reporter,
	}
}

// TestTCPGoldenSignals runs one agent over several scenarios between two
// namespaces on a bridge, each on its own server port so series never mix.
func TestTCPGoldenSignals(t *testing.T) {
	a := startAgent(t, "--sweep-interval", sweep.String())
	lab := netlab.New(t)
	srv := lab.Host("srv", "10.244.1.3/16")
	cli := lab.Host("cli", "10.244.1.2/16")

	t.Run("connections and exact payload bytes", func(t *testing.T) {
		const port = 8080
		server(t, srv, port, "-request", "100", "-reply", "300")
		r := client(t, cli, "-connect", fmt.Sprintf("%s:%d", srv.IP, port),
			"-count", "5", "-requests", "2", "-send", "100", "-expect", "300")
		if r.OK != 5 || r.Sent != 1000 || r.Received != 3000 {
			t.Fatalf("client did not do its part: %+v", r)
		}
		for _, side := range []struct {
			reporter   string
			sent, recv float64
		}{{"client", 1000, 3000}, {"server", 3000, 1000}} {
			l := pair(port, side.reporter)
			a.Expect(t, "strata_tcp_connections_total", l.With("result", "success"), 5, 0)
			a.Expect(t, "strata_tcp_sent_bytes_total", l, side.sent, 0)
			a.Expect(t, "strata_tcp_received_bytes_total", l, side.recv, 0)
			a.Expect(t, "strata_tcp_active_connections", l, 0, 0)
			a.Expect(t, "strata_tcp_retransmits_total", l, 0, 0) // a clean pair
		}
		// Another sweep and nothing moves: closed connections count once.
		time.Sleep(2 * sweep)
		a.Expect(t, "strata_tcp_sent_bytes_total", pair(port, "client"), 1000, 0)
		a.Expect(t, "strata_tcp_connections_total", pair(port, "server").With("result", "success"), 5, 0)
	})

	t.Run("refused", func(t *testing.T) {
		const port = 8081 // nobody listens
		r := client(t, cli, "-connect", fmt.Sprintf("%s:%d", srv.IP, port), "-count", "3", "-allow-fail")
		if r.Failed != 3 {
			t.Fatalf("client: %+v", r)
		}
		l := pair(port, "client").With("destination_workload", "unknown")
		a.Expect(t, "strata_tcp_connections_total", l.With("result", "refused"), 3, sweep)
		if v, ok := a.Value(t, "strata_tcp_connections_total", l.With("result", "success")); ok {
			t.Fatalf("refused connects also counted as %v successes", v)
		}
	})

	t.Run("timeout", func(t *testing.T) {
		const port = 8082
		server(t, srv, port, "-request", "1", "-reply", "1")
		srv.DropSYN(port)
		cli.Sysctl("net.ipv4.tcp_syn_retries", "1") // the kernel gives up after ~3s with ETIMEDOUT
		defer cli.Sysctl("net.ipv4.tcp_syn_retries", "6")
		r := client(t, cli, "-connect", fmt.Sprintf("%s:%d", srv.IP, port), "-count", "2", "-timeout", "20s", "-allow-fail")
		if r.Failed != 2 {
			t.Fatalf("client: %+v", r)
		}
		a.Expect(t, "strata_tcp_connections_total", pair(port, "client").With("result", "timeout"), 2, 0)
		if _, ok := a.Value(t, "strata_tcp_connections_total", pair(port, "server").With("result", "success")); ok {
			t.Fatal("the server reported connections whose SYNs it never got")
		}
	})

	t.Run("peer reset", func(t *testing.T) {
		const port = 8083
		server(t, srv, port, "-request", "10", "-reset")
		r := client(t, cli, "-connect", fmt.Sprintf("%s:%d", srv.IP, port), "-count", "4", "-send", "10", "-expect", "10", "-allow-fail")
		if r.Failed != 4 {
			t.Fatalf("client: %+v", r)
		}
		a.Expect(t, "strata_tcp_resets_total", pair(port, "server").With("direction", "sent"), 4, 0)
		a.Expect(t, "strata_tcp_resets_total", pair(port, "client").With("direction", "received"), 4, 0)
		a.Expect(t, "strata_tcp_connections_total", pair(port, "client").With("result", "success"), 4, 0)
		a.Expect(t, "strata_tcp_active_connections", pair(port, "client"), 0, 0)
		if _, ok := a.Value(t, "strata_tcp_resets_total", pair(port, "client").With("direction", "sent")); ok {
			t.Fatal("the client reported resets it never sent")
		}
	})

	t.Run("retransmits only on the lossy pair", func(t *testing.T) {
		const port = 8084
		server(t, srv, port, "-request", "100000", "-reply", "10")
		srv.DropEvery(port, 4) // random loss could miss a transfer of few (GSO) segments
		r := client(t, cli, "-connect", fmt.Sprintf("%s:%d", srv.IP, port),
			"-count", "1", "-requests", "5", "-send", "100000", "-expect", "10", "-timeout", "20s")
		if r.OK != 1 {
			t.Fatalf("client: %+v", r)
		}
		l := pair(port, "client")
		a.Expect(t, "strata_tcp_sent_bytes_total", l, 500000, 0) // loss changes nothing in what arrived
		a.Expect(t, "strata_tcp_received_bytes_total", pair(port, "server"), 500000, 0)
		if v, _ := a.Value(t, "strata_tcp_retransmits_total", l); v < 1 {
			t.Fatalf("retransmits on the lossy pair = %v, want > 0", v)
		}
		// The clean pair of the first scenario stayed clean.
		a.Expect(t, "strata_tcp_retransmits_total", pair(8080, "client"), 0, 0)
		a.Expect(t, "strata_tcp_retransmits_total", pair(8080, "server"), 0, 0)
	})

	t.Run("long-lived connection reports while open", func(t *testing.T) {
		const port = 8085
		server(t, srv, port, "-request", "1000", "-reply", "1000")
		done := make(chan error, 1)
		var r result
		go func() {
			var err error
			r, err = runClient(cli, "-connect", fmt.Sprintf("%s:%d", srv.IP, port),
				"-count", "1", "-requests", "8", "-send", "1000", "-expect", "1000", "-hold", "1s")
			done <- err
		}()
		l := pair(port, "client")
		var sent []float64
		var rtt float64
		for open := true; open; {
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
				if r.OK != 1 {
					t.Fatalf("client: %+v", r)
				}
				open = false
			case <-time.After(300 * time.Millisecond):
				mfs, err := a.Scrape()
				if err != nil {
					t.Fatal(err)
				}
				if active, _ := harness.ValueIn(t, mfs, "strata_tcp_active_connections", l); active != 1 {
					continue
				}
				v, _ := harness.ValueIn(t, mfs, "strata_tcp_sent_bytes_total", l)
				if len(sent) == 0 || v != sent[len(sent)-1] {
					sent = append(sent, v)
				}
				rtt, _ = harness.ValueIn(t, mfs, "strata_tcp_rtt_seconds", l)
			}
		}
		// Open for ~8 sweeps: at least three distinct, growing byte counts and
		// three RTT samples must have been visible before the close.
		if len(sent) < 3 || rtt < 3 {
			t.Fatalf("while open: sent %v, rtt samples %v; want >= 3 growing values and >= 3 samples", sent, rtt)
		}
		for i := 1; i < len(sent); i++ {
			if sent[i] <= sent[i-1] {
				t.Fatalf("sent bytes went %v", sent)
			}
		}
		a.Expect(t, "strata_tcp_sent_bytes_total", l, 8000, 0)
		a.Expect(t, "strata_tcp_connections_total", l.With("result", "success"), 1, 0)
	})

	t.Run("agent health", func(t *testing.T) {
		for probe, mode := range map[string]string{"tcp_state": "tracepoint", "tcp_sweep": "iterator", "tcp_retransmit": "tracepoint", "tcp_reset": "tracepoint"} {
			a.Expect(t, "strata_agent_probe_info", labels{"probe": probe, "mode": mode}, 1, 0)
		}
		mfs, err := a.Scrape()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range mfs["strata_agent_events_lost_total"].GetMetric() {
			if m.GetCounter().GetValue() != 0 {
				t.Errorf("lost events: %v", m)
			}
		}
		if v, _ := harness.ValueIn(t, mfs, "strata_agent_events_total", labels{"probe": "tcp_state"}); v < 30 {
			t.Errorf("tcp_state events = %v, want at least the scenarios' records", v)
		}
	})
}
