package httpflow

import (
	"encoding/hex"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/stratanet/strata/agent/emit"
	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/exporters/loki"
	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
	"github.com/stratanet/strata/probes/http"
)

type spans []emit.Span

func (s *spans) Export(sp emit.Span) bool { *s = append(*s, sp); return true }

// at names every socket at once, by keyFor.
type at func(e *event.TCP) flow.Key

func (f at) Name(e *event.TCP, _ *flow.Wait) (flow.Key, bool) { return f(e), true }
func (f at) Settle(*flow.Wait) (flow.Key, bool)               { panic("nothing waits") }

var names = at(key)

func key(e *event.TCP) flow.Key {
	k := flow.Key{SourceWorkload: "curl", DestinationWorkload: "nginx", DestinationPort: "80", Reporter: "client"}
	if e.Kind == event.Accept {
		k.Reporter = "server"
	}
	return k
}

var (
	cl = netip.MustParseAddrPort("10.0.0.1:5000")
	sv = netip.MustParseAddrPort("10.0.0.2:80")
)

func wall(mono uint64) time.Time { return time.Unix(1000, int64(mono)) }

// server-side records: requests received, responses sent.
func req(sock, at uint64, head string) *event.HTTP {
	e := &event.HTTP{Sock: sock, Mono: at, Received: true, Local: sv, Remote: cl}
	http.Fill(e, head)
	return e
}
func resp(sock, at uint64, head string) *event.HTTP {
	e := &event.HTTP{Sock: sock, Mono: at, Response: true, Local: sv, Remote: cl}
	http.Fill(e, head)
	return e
}

// gather reads the table's metrics.
func gather(t *testing.T, tb *Table) map[string]*dto.MetricFamily {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(tb)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

func count(mfs map[string]*dto.MetricFamily, name string, labels map[string]string) uint64 {
	var n uint64
	for _, m := range mfs[name].GetMetric() {
		ok := true
		for _, lp := range m.GetLabel() {
			if v, want := labels[lp.GetName()]; want && v != lp.GetValue() {
				ok = false
			}
		}
		if ok {
			n += m.GetHistogram().GetSampleCount()
		}
	}
	return n
}

func TestKeepAliveAndPipelining(t *testing.T) {
	tb := New(names, nil, nil, wall, "", DefaultOptions())
	// keep-alive: three in a row
	for i := uint64(0); i < 3; i++ {
		tb.Apply(req(1, 100*i, "GET /users/"+string(rune('1'+i))+" HTTP/1.1\r\n"))
		tb.Apply(resp(1, 100*i+50, "HTTP/1.1 200 OK\r\n"))
	}
	// pipelining: two requests, then both responses, in order
	tb.Apply(req(2, 0, "GET /a HTTP/1.1\r\n"))
	tb.Apply(req(2, 10, "POST /b HTTP/1.1\r\n"))
	tb.Apply(resp(2, 20, "HTTP/1.1 100 Continue\r\n")) // interim: not the answer
	tb.Apply(resp(2, 30, "HTTP/1.1 204 No Content\r\n"))
	tb.Apply(resp(2, 40, "HTTP/1.1 503 Unavailable\r\n"))
	mfs := gather(t, tb)
	const name = "strata_http_server_request_duration_seconds"
	for _, c := range []struct {
		labels map[string]string
		want   uint64
	}{
		{map[string]string{"route": "/users/{id}", "status_code": "200", "method": "GET"}, 3},
		{map[string]string{"route": "/a", "status_code": "204"}, 1},
		{map[string]string{"route": "/b", "status_code": "503", "method": "POST"}, 1},
		{map[string]string{"reporter": "server"}, 5},
	} {
		if got := count(mfs, name, c.labels); got != c.want {
			t.Errorf("%v: %d, want %d", c.labels, got, c.want)
		}
	}
	// Idle sockets are forgotten once quiet for IdleAfter, by kernel time.
	tb.Apply(req(9, uint64(2*IdleAfter), "GET /late HTTP/1.1\r\n"))
	tb.now = func() time.Time { return time.Now().Add(time.Hour) }
	tb.Tick()
	if _, ok := tb.socks[9]; !ok || len(tb.socks) != 1 {
		t.Errorf("sockets after the idle sweep: %d, want only the one with a request in flight", len(tb.socks))
	}
}

func TestUnansweredAtClose(t *testing.T) {
	tb := New(names, nil, nil, wall, "", DefaultOptions())
	tb.Apply(req(7, 0, "GET /slow HTTP/1.1\r\n"))
	tb.Apply(resp(7, 5e8, "HTTP/1.1 200 OK\r\n"))
	tb.Apply(req(7, 6e8, "GET /never HTTP/1.1\r\n"))
	tb.Closed(7, 1e9)
	tb.Apply(resp(7, 2e9, "HTTP/1.1 200 OK\r\n")) // nothing in flight any more
	mfs := gather(t, tb)
	const name = "strata_http_server_request_duration_seconds"
	if got := count(mfs, name, map[string]string{"route": "/slow", "status_code": "200"}); got != 1 {
		t.Errorf("/slow answered = %d, want 1", got)
	}
	if got := count(mfs, name, map[string]string{"route": "/never", "status_code": Noanswer}); got != 1 {
		t.Errorf("/never unanswered = %d, want 1", got)
	}
	if len(tb.socks) != 0 {
		t.Errorf("%d sockets left after the close", len(tb.socks))
	}
}

func TestGarbageNeverBecomesSeries(t *testing.T) {
	tb := New(names, nil, nil, wall, "", DefaultOptions())
	tb.Apply(req(1, 0, "GET /x HTTP/9.9\r\n"))
	tb.Apply(req(1, 0, "\x16\x03\x01\x00"))
	tb.Apply(resp(1, 0, "HTTP/1.1 200 OK\r\n")) // no request in flight
	mfs := gather(t, tb)
	if n := len(mfs["strata_http_server_request_duration_seconds"].GetMetric()); n != 0 {
		t.Fatalf("%d series from garbage", n)
	}
	for outcome, want := range map[string]float64{"malformed": 2, "unpaired": 1} {
		for _, m := range mfs["strata_agent_http_records_total"].GetMetric() {
			if m.GetLabel()[0].GetValue() == outcome && m.GetCounter().GetValue() != want {
				t.Errorf("%s = %v, want %v", outcome, m.GetCounter().GetValue(), want)
			}
		}
	}
}

func TestTraceparentJoinsTraceAndExemplar(t *testing.T) {
	var sp spans
	tb := New(names, nil, &sp, wall, "prod", DefaultOptions())
	const tid, pid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	tb.Apply(req(3, 1000, "GET /users/42 HTTP/1.1\r\nHost: x\r\ntraceparent: 00-"+tid+"-"+pid+"-01\r\n\r\n"))
	tb.Apply(resp(3, 51_000_000, "HTTP/1.1 500 Oops\r\n"))
	tb.Apply(req(3, 60_000_000, "GET /other HTTP/1.1\r\n\r\n"))
	tb.Apply(resp(3, 61_000_000, "HTTP/1.1 200 OK\r\n"))
	mfs := gather(t, tb)
	if len(sp) != 2 {
		t.Fatalf("%d spans, want 2", len(sp))
	}
	s := sp[0]
	if hex.EncodeToString(s.TraceID[:]) != tid || hex.EncodeToString(s.ParentID[:]) != pid || !s.Server {
		t.Fatalf("span %x parent %x server %v", s.TraceID, s.ParentID, s.Server)
	}
	if s.Name != "GET /users/{id}" || s.Resource.Service != "nginx" || s.Resource.Cluster != "prod" || !s.Error ||
		s.Attrs["http.response.status_code"] != int64(500) || s.Attrs["server.port"] != int64(80) ||
		s.Attrs["client.address"] != "10.0.0.1" || s.End.Sub(s.Start) != 50999*time.Microsecond {
		t.Fatalf("span %+v", s)
	}
	if sp[1].TraceID == s.TraceID || sp[1].ParentID != [8]byte{} {
		t.Fatal("a request without traceparent must start its own trace")
	}
	var found bool
	for _, m := range mfs["strata_http_server_request_duration_seconds"].GetMetric() {
		for _, b := range m.GetHistogram().GetBucket() {
			if ex := b.GetExemplar(); ex != nil && ex.GetLabel()[0].GetValue() == tid {
				found = true
				if b.GetUpperBound() < 0.05 {
					t.Errorf("exemplar of a 51ms request in bucket le=%v", b.GetUpperBound())
				}
			}
		}
	}
	if !found {
		t.Fatal("no exemplar carries the request's trace id")
	}
}

func TestRoutesAreBounded(t *testing.T) {
	tb := New(names, nil, nil, wall, "", DefaultOptions())
	for i := 0; i < DefaultOptions().MaxRoutes+100; i++ {
		tb.Apply(req(1, 0, "GET /page-"+strings.Repeat("x", i%7)+string(rune('a'+i%26))+"/"+hex.EncodeToString([]byte{byte(i), byte(i >> 8)})+"z HTTP/1.1\r\n"))
		tb.Apply(resp(1, 1, "HTTP/1.1 200 OK\r\n"))
	}
	if len(tb.routes) > DefaultOptions().MaxRoutes {
		t.Fatalf("%d routes kept", len(tb.routes))
	}
	if got := count(gather(t, tb), "strata_http_server_request_duration_seconds", map[string]string{"route": flow.Other}); got == 0 {
		t.Fatal("routes beyond the budget did not fold into ~other")
	}
}

// A socket address reused by a new connection whose predecessor's close
// was not seen: the old request ends unanswered, the new one pairs.
func TestReusedAddressWithoutClose(t *testing.T) {
	tb := New(names, nil, nil, wall, "", DefaultOptions())
	tb.Apply(req(5, 100, "POST /a HTTP/1.1\r\n"))
	second := req(5, 300, "POST /a HTTP/1.1\r\n")
	second.Remote = netip.MustParseAddrPort("10.0.0.1:5001") // the next connection
	tb.Apply(second)
	r := resp(5, 400, "HTTP/1.1 500 Oops\r\n")
	r.Remote = second.Remote
	tb.Apply(r)
	mfs := gather(t, tb)
	const name = "strata_http_server_request_duration_seconds"
	if got := count(mfs, name, map[string]string{"status_code": "500"}); got != 1 {
		t.Errorf("answered = %d, want 1", got)
	}
	if got := count(mfs, name, map[string]string{"status_code": Noanswer}); got != 1 {
		t.Errorf("unanswered = %d, want 1", got)
	}
}

type events []emit.Event

func (ev *events) Push(e emit.Event) bool { *ev = append(*ev, e); return true }

func TestFailedRequestsAreEvents(t *testing.T) {
	var ev events
	tb := New(names, nil, nil, wall, "", DefaultOptions())
	tb.Events = &ev
	const tid = "4bf92f3577b34da6a3ce929d0e0e4736"
	tb.Apply(req(3, 0, "POST /api/users/42 HTTP/1.1\r\ntraceparent: 00-"+tid+"-00f067aa0ba902b7-01\r\n\r\n"))
	tb.Apply(resp(3, 2_000_000, "HTTP/1.1 503 Busy\r\n"))
	tb.Apply(req(3, 3_000_000, "GET /missing HTTP/1.1\r\n\r\n"))
	tb.Apply(resp(3, 4_000_000, "HTTP/1.1 404 Not Found\r\n")) // the client's mistake: no event
	tb.Apply(req(3, 5_000_000, "GET /hang HTTP/1.1\r\n\r\n"))
	tb.Closed(3, 9_000_000)
	if len(ev) != 2 {
		t.Fatalf("%d events, want 2 (the 503 and the unanswered request)", len(ev))
	}
	want := []string{
		"source_workload=curl destination_workload=nginx destination_port=80 reporter=server source_addr=10.0.0.1:5000 destination_addr=10.0.0.2:80 method=POST route=/api/users/{id} status_code=503 duration=0.002000 trace_id=" + tid,
		`source_workload=curl destination_workload=nginx destination_port=80 reporter=server source_addr=10.0.0.1:5000 destination_addr=10.0.0.2:80 method=GET route=/hang status_code=0 duration=0.004000 error="no response before the connection closed"`,
	}
	for i, e := range ev {
		if e.Kind != emit.HTTPError || e.Namespace != "" || loki.Line(e) != want[i] {
			t.Errorf("event %d: %s %q\n%s\nwant\n%s", i, e.Kind, e.Namespace, loki.Line(e), want[i])
		}
	}
	if !ev[0].Time.Equal(wall(2_000_000)) {
		t.Errorf("event time %v, want the response's", ev[0].Time)
	}
}

// worldNames: client sockets to port 443 talk to the outside world.
type worldNames struct{}

func (worldNames) keyFor(e *event.TCP) flow.Key {
	k := key(e)
	if k.Reporter == "client" && e.Remote.Port() == 443 {
		k.DestinationWorkload = identity.World
	}
	return k
}

func TestServiceGraph(t *testing.T) {
	tb := New(at(worldNames{}.keyFor), nil, nil, wall, "", DefaultOptions())
	// The server's view of three requests: 200, 500, never answered.
	tb.Apply(req(1, 0, "GET /a HTTP/1.1\r\n"))
	tb.Apply(resp(1, 2e6, "HTTP/1.1 200 OK\r\n"))
	tb.Apply(req(1, 3e6, "GET /a HTTP/1.1\r\n"))
	tb.Apply(resp(1, 4e6, "HTTP/1.1 500 Oops\r\n"))
	tb.Apply(req(1, 5e6, "GET /a HTTP/1.1\r\n"))
	tb.Closed(1, 9e6)
	// The client's view of two of them: timed, but counted at the server.
	client := func(sock uint64, remote netip.AddrPort, at uint64, status string) {
		r := &event.HTTP{Sock: sock, Mono: at, Local: cl, Remote: remote}
		http.Fill(r, "GET /a HTTP/1.1\r\n")
		tb.Apply(r)
		a := &event.HTTP{Sock: sock, Mono: at + 1e6, Response: true, Received: true, Local: cl, Remote: remote}
		http.Fill(a, "HTTP/1.1 "+status+"\r\n")
		tb.Apply(a)
	}
	client(2, sv, 0, "200 OK")
	client(2, sv, 3e6, "500 Oops")
	// A call to the outside: only its client sees it, so it counts there.
	world := netip.MustParseAddrPort("10.250.0.9:443")
	client(3, world, 0, "503 Busy")
	mfs := gather(t, tb)
	value := func(name, client, server string) float64 {
		for _, m := range mfs[name].GetMetric() {
			l := map[string]string{}
			for _, lp := range m.GetLabel() {
				l[lp.GetName()] = lp.GetValue()
			}
			if l["client"] == client && l["server"] == server {
				if m.Histogram != nil {
					return float64(m.GetHistogram().GetSampleCount())
				}
				return m.GetCounter().GetValue()
			}
		}
		t.Fatalf("no %s{client=%q,server=%q}", name, client, server)
		return 0
	}
	for _, c := range []struct {
		name, client, server string
		want                 float64
	}{
		{"traces_service_graph_request_total", "curl", "nginx", 3},
		{"traces_service_graph_request_failed_total", "curl", "nginx", 2},
		{"traces_service_graph_request_server_seconds", "curl", "nginx", 3},
		{"traces_service_graph_request_client_seconds", "curl", "nginx", 2},
		{"traces_service_graph_request_total", "curl", "world", 1},
		{"traces_service_graph_request_failed_total", "curl", "world", 1},
		{"traces_service_graph_request_client_seconds", "curl", "world", 1},
	} {
		if got := value(c.name, c.client, c.server); got != c.want {
			t.Errorf("%s{%s->%s} = %v, want %v", c.name, c.client, c.server, got, c.want)
		}
	}
	if n := len(mfs["traces_service_graph_request_server_seconds"].GetMetric()); n != 1 {
		t.Errorf("%d server-time series, want 1 (no server saw the outside call)", n)
	}
	if got, want := serviceName("shop", "frontend"), "shop/frontend"; got != want {
		t.Errorf("serviceName = %q, want %q", got, want)
	}
}

type shopNames struct{}

func (shopNames) keyFor(e *event.TCP) flow.Key {
	k := key(e)
	k.SourceNamespace, k.DestinationNamespace = "shop", "shop"
	return k
}

func TestSeriesOfDeletedWorkloadsGo(t *testing.T) {
	tb := New(at(shopNames{}.keyFor), nil, nil, wall, "", DefaultOptions())
	now := time.Unix(5000, 0)
	tb.now = func() time.Time { return now }
	gone := map[string]time.Time{}
	tb.Gone = func(ns, name string) (time.Time, bool) { s, ok := gone[ns+"/"+name]; return s, ok }
	tb.GoneGrace = time.Minute
	tb.Apply(req(1, 0, "GET / HTTP/1.1\r\n"))
	tb.Apply(resp(1, 10, "HTTP/1.1 200 OK\r\n"))
	const name = "strata_http_server_request_duration_seconds"
	gone["shop/curl"] = now
	now = now.Add(59 * time.Second)
	tb.Tick()
	if got := count(gather(t, tb), name, map[string]string{"source_workload": "curl"}); got != 1 {
		t.Fatalf("within the grace period: %d requests, want 1", got)
	}
	now = now.Add(flow.PruneEvery(tb.GoneGrace)) // the next look
	tb.Tick()
	if got := count(gather(t, tb), name, nil); got != 0 {
		t.Errorf("past the grace period: %d requests still exposed", got)
	}
}

// paired is a server-side exchange as the kernel pairs it: the request's
// fields, the response's status and both times in one record.
func paired(sock, at, end uint64, head string, status int) *event.HTTP {
	e := req(sock, at, head)
	e.Status, e.Ended = status, end
	return e
}

func TestPairedInTheKernel(t *testing.T) {
	tb := New(names, nil, nil, wall, "", DefaultOptions())
	tb.Apply(paired(1, 0, 2e8, "GET /users/7 HTTP/1.1\r\n", 200))
	tb.Apply(paired(1, 3e8, 4e8, "GET /users/8 HTTP/1.1\r\n", 200))
	tb.Apply(paired(1, 5e8, 9e8, "POST /orders HTTP/1.1\r\n", 503))
	tb.Apply(paired(2, 0, 1e9, "GET /never HTTP/1.1\r\n", 0)) // closed unanswered
	bad := paired(3, 0, 1e8, "\x16\x03\x01\x02\x00", 200)     // TLS: never a series
	tb.Apply(bad)
	mfs := gather(t, tb)
	const name = "strata_http_server_request_duration_seconds"
	for _, c := range []struct {
		labels map[string]string
		want   uint64
	}{
		{map[string]string{"route": "/users/{id}", "status_code": "200", "method": "GET"}, 2},
		{map[string]string{"route": "/orders", "status_code": "503", "method": "POST"}, 1},
		{map[string]string{"route": "/never", "status_code": Noanswer}, 1},
		{map[string]string{"reporter": "server"}, 4},
	} {
		if got := count(mfs, name, c.labels); got != c.want {
			t.Errorf("%v: %d, want %d", c.labels, got, c.want)
		}
	}
	var sum float64
	for _, m := range mfs[name].GetMetric() {
		sum += m.GetHistogram().GetSampleSum()
	}
	if want := 0.2 + 0.1 + 0.4 + 1.0; sum < want-1e-9 || sum > want+1e-9 {
		t.Errorf("latency sum %v s, want %v s (end minus start of each exchange)", sum, want)
	}
	if tb.malformed != 1 {
		t.Errorf("malformed = %d, want 1", tb.malformed)
	}
	if len(tb.socks) != 0 {
		t.Errorf("%d sockets tracked; paired records need no per-socket state", len(tb.socks))
	}
}

// opening is a kernel-paired exchange that opens tally slot n of a socket.
func opening(sock, cookie uint64, n int, head string, status int) *event.HTTP {
	e := paired(sock, 0, 1e6, head, status)
	e.Slot, e.Cookie = n, cookie
	return e
}

// counted is a tally of one slot: n exchanges in bucket b, sum ns in all.
func counted(sock, cookie uint64, slot, status, b int, n uint32, sum uint64, final bool) *event.HTTPTally {
	c := &event.HTTPTally{Sock: sock, Cookie: cookie, Final: final}
	s := &c.Slots[slot]
	s.Used, s.Status, s.Sum = true, status, sum
	s.Counts[b] = n
	return c
}

func TestTallies(t *testing.T) {
	tb := New(names, nil, nil, wall, "", DefaultOptions())
	const name = "strata_http_server_request_duration_seconds"
	users := map[string]string{"route": "/users/{id}", "status_code": "200", "method": "GET"}
	tb.Apply(opening(1, 11, 1, "GET /users/7 HTTP/1.1\r\n", 200))
	tb.Apply(opening(1, 11, 2, "GET /missing HTTP/1.1\r\n", 404))
	if len(tb.tallies) != 1 {
		t.Errorf("%d tallied sockets after the openings, want 1", len(tb.tallies))
	}
	tb.Tally(counted(1, 11, 0, 200, 2, 40, 40*2e6, false)) // 40 more of /users, 2 ms each
	c := counted(1, 11, 0, 200, 3, 5, 5*4e6, true)         // the close: 5 more, and 2 of /missing
	c.Slots[1] = event.TallySlot{Used: true, Status: 404, Sum: 2e6}
	c.Slots[1].Counts[2] = 2
	tb.Tally(c)
	mfs := gather(t, tb)
	if got := count(mfs, name, users); got != 1+40+5 {
		t.Errorf("/users: %d, want 46", got)
	}
	if got := count(mfs, name, map[string]string{"route": "/missing", "status_code": "404"}); got != 3 {
		t.Errorf("/missing: %d, want 3", got)
	}
	for _, m := range mfs[name].GetMetric() {
		h := m.GetHistogram()
		if h.GetSampleCount() != 46 {
			continue
		}
		// Buckets as the kernel counted them: 1 ms (the opening), 2.5 ms, 5 ms.
		want := map[float64]uint64{.0005: 0, .001: 1, .0025: 41, .005: 46, 10: 46}
		for _, b := range h.GetBucket() {
			if w, ok := want[b.GetUpperBound()]; ok && b.GetCumulativeCount() != w {
				t.Errorf("le=%v: %d, want %d", b.GetUpperBound(), b.GetCumulativeCount(), w)
			}
		}
		if s, want := h.GetSampleSum(), 0.001+40*0.002+5*0.004; s < want-1e-9 || s > want+1e-9 {
			t.Errorf("sum %v, want %v", s, want)
		}
	}
	if len(tb.tallies) != 0 {
		t.Errorf("%d tallied sockets after the final tally, want none", len(tb.tallies))
	}

	// Counts of a socket whose opening exchange never came (a lost record),
	// or of another socket at a freed one's address, are dropped and counted.
	tb.Apply(opening(2, 21, 1, "GET /a HTTP/1.1\r\n", 200))
	tb.Tally(counted(2, 22, 0, 200, 0, 3, 3e5, false)) // another cookie: another socket
	tb.Tally(counted(3, 31, 0, 200, 0, 4, 4e5, false)) // never opened
	tb.Tally(counted(2, 21, 1, 200, 0, 5, 5e5, false)) // a slot never opened
	if tb.dropped != 3+4+5 {
		t.Errorf("dropped %d, want 12", tb.dropped)
	}
	if got := count(gather(t, tb), name, map[string]string{"route": "/a"}); got != 1 {
		t.Errorf("/a: %d, want 1 (the opening only)", got)
	}
	// A slot whose opening exchange was not HTTP after all counts as malformed.
	tb.Apply(opening(4, 41, 1, "POSTX /b HTTP/1.1\r\n", 200))
	tb.Tally(counted(4, 41, 0, 200, 0, 6, 6e5, true))
	if tb.malformed != 1+6 {
		t.Errorf("malformed %d, want 7", tb.malformed)
	}

	// A socket whose final tally was lost goes a while after its close.
	tb.Closed(2, 0)
	tb.now = func() time.Time { return time.Now().Add(2 * IdleAfter) }
	tb.Tick()
	if len(tb.tallies) != 0 {
		t.Errorf("%d tallied sockets an idle sweep after their close, want 0", len(tb.tallies))
	}
}

// later is a namer that names nothing until told.
type later struct {
	known bool
	key   flow.Key
	asked int // Settle calls
}

func (l *later) Name(e *event.TCP, w *flow.Wait) (flow.Key, bool) {
	l.key = key(e)
	return l.key, l.known || w == nil
}

func (l *later) Settle(*flow.Wait) (flow.Key, bool) {
	l.asked++
	return l.key, l.known
}

// Counts that come while the slot's opening exchange waits for its names
// are held, and counted with it once named.
func TestTallyWaitsForNames(t *testing.T) {
	l := &later{}
	tb := New(l, nil, nil, wall, "", DefaultOptions())
	tb.Apply(opening(1, 11, 1, "GET /x HTTP/1.1\r\n", 200))
	tb.Tally(counted(1, 11, 0, 200, 1, 9, 9e5, false))
	const name = "strata_http_server_request_duration_seconds"
	if got := count(gather(t, tb), name, nil); got != 0 {
		t.Fatalf("%d counted before the names came, want 0", got)
	}
	tb.Tick()
	if got := count(gather(t, tb), name, nil); got != 0 || l.asked != 1 {
		t.Fatalf("%d counted while the names are not in (asked %d times), want 0", got, l.asked)
	}
	l.known = true
	tb.Tick()
	tb.Tick()
	if l.asked != 2 {
		t.Errorf("asked %d times, want 2: once named, a request waits no more", l.asked)
	}
	tb.Tally(counted(1, 11, 0, 200, 1, 2, 2e5, true))
	if got := count(gather(t, tb), name, map[string]string{"route": "/x", "reporter": "server"}); got != 1+9+2 {
		t.Errorf("/x: %d, want 12", got)
	}
}
