package flow

import (
	"net/netip"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"go.uber.org/zap"

	"github.com/stratanet/strata/agent/emit"
	"github.com/stratanet/strata/exporters/loki"
	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

// fakeID names every socket after its ports: client sockets connect to
// port 80, servers listen on it.
type fakeID struct{ forgotten []uint64 }

func (f *fakeID) Observe(*event.TCP) {}
func (f *fakeID) Forget(s uint64)    { f.forgotten = append(f.forgotten, s) }
func (f *fakeID) Identify(e *event.TCP) identity.Pair {
	if e.Local.Port() == 80 {
		return identity.Pair{Source: identity.Workload{Name: "client-" + e.Comm}, Destination: identity.Workload{Name: "web"}, Port: 80, Reporter: identity.Server}
	}
	return identity.Pair{Source: identity.Workload{Name: "client-" + e.Comm}, Destination: identity.Workload{Name: "web"}, Port: e.Remote.Port(), Reporter: identity.Client}
}

var (
	cli = netip.MustParseAddrPort("10.0.0.1:40000")
	srv = netip.MustParseAddrPort("10.0.0.2:80")
)

func clientEvent(k event.Kind, sock uint64, sent, recv uint64) *event.TCP {
	return &event.TCP{Kind: k, Sock: sock, Netns: 1, Comm: "a", PID: 1, Local: cli, Remote: srv,
		State: event.StateEstablished, Counters: event.Counters{SentBytes: sent, ReceivedBytes: recv, SRTT: 200 * time.Microsecond}}
}

const labels = `destination_namespace="",destination_port="80",destination_service="",destination_workload="web",reporter="client",source_namespace="",source_workload="client-a"`

func scrape(t *testing.T, tb *Table, names ...string) string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(tb)
	var b strings.Builder
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, n := range names {
			if mf.GetName() == n {
				for _, m := range mf.GetMetric() {
					b.WriteString(n + " " + m.String() + "\n")
				}
			}
		}
	}
	return b.String()
}

func value(t *testing.T, tb *Table, metric, lbls string) float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(tb)
	exp := metric + "{" + lbls + "}"
	n, err := testutil.GatherAndCount(reg, metric)
	if err != nil || n == 0 {
		t.Fatalf("%s: %d series, %v", metric, n, err)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != metric {
			continue
		}
		for _, m := range mf.GetMetric() {
			var parts []string
			for _, lp := range m.GetLabel() {
				parts = append(parts, lp.GetName()+`="`+lp.GetValue()+`"`)
			}
			want := strings.Split(lbls, ",")
			sort.Strings(want)
			if strings.Join(parts, ",") == strings.Join(want, ",") {
				switch {
				case m.Counter != nil:
					return m.Counter.GetValue()
				case m.Gauge != nil:
					return m.Gauge.GetValue()
				case m.Histogram != nil:
					return float64(m.Histogram.GetSampleCount())
				}
			}
		}
	}
	t.Fatalf("no series %s", exp)
	return 0
}

func TestConnectionLifecycleCountsPayloadOnce(t *testing.T) {
	id := &fakeID{}
	tb := NewTable(zap.NewNop(), id, DefaultOptions())
	tb.Apply(clientEvent(event.Connect, 7, 1, 0)) // the SYN is the baseline
	if got := value(t, tb, "strata_tcp_active_connections", labels); got != 1 {
		t.Fatalf("active = %v, want 1", got)
	}
	s := clientEvent(event.Snapshot, 7, 1001, 501)
	s.Sweep = 1
	tb.Apply(s)
	if got := value(t, tb, "strata_tcp_sent_bytes_total", labels); got != 1000 {
		t.Fatalf("sent after sweep = %v, want 1000", got)
	}
	tb.Apply(clientEvent(event.Close, 7, 1501, 701))
	for metric, want := range map[string]float64{
		"strata_tcp_sent_bytes_total":     1500,
		"strata_tcp_received_bytes_total": 701,
		"strata_tcp_active_connections":   0,
		"strata_tcp_rtt_seconds":          2, // one sample per sweep and at close
		"strata_tcp_retransmits_total":    0,
	} {
		if got := value(t, tb, metric, labels); got != want {
			t.Errorf("%s = %v, want %v", metric, got, want)
		}
	}
	if got := value(t, tb, "strata_tcp_connections_total", labels+`,result="success"`); got != 1 {
		t.Errorf("connections = %v, want 1", got)
	}
	held := 0
	for _, ns := range tb.byNetns {
		held += len(ns)
	}
	if len(tb.conns) != 0 || held != 0 {
		t.Errorf("closed socket still followed: %d, %d", len(tb.conns), held)
	}
	if tb.Tick(); len(tb.byNetns) != 0 { // an emptied namespace goes at the next tick
		t.Errorf("emptied namespaces kept after a tick: %d", len(tb.byNetns))
	}
	if len(id.forgotten) != 1 || id.forgotten[0] != 7 {
		t.Errorf("identity not told to forget socket 7: %v", id.forgotten)
	}
	// A late duplicate close changes nothing: the socket is gone.
	tb.Apply(clientEvent(event.Close, 7, 9999, 9999))
	if got := value(t, tb, "strata_tcp_sent_bytes_total", labels); got != 1500 {
		t.Errorf("sent after duplicate close = %v", got)
	}
}

func TestPreexistingSocketStartsFromBaseline(t *testing.T) {
	tb := NewTable(zap.NewNop(), &fakeID{}, DefaultOptions())
	s := clientEvent(event.Snapshot, 9, 1<<30, 1<<20)
	tb.Apply(s)
	s2 := clientEvent(event.Snapshot, 9, 1<<30+10, 1<<20+20)
	tb.Apply(s2)
	if got := value(t, tb, "strata_tcp_sent_bytes_total", labels); got != 10 {
		t.Fatalf("sent = %v, want 10 (bytes before the agent are not this run's)", got)
	}
	if got := value(t, tb, "strata_tcp_active_connections", labels); got != 1 {
		t.Fatalf("active = %v, want 1", got)
	}
}

// fickleID answers "world" until told otherwise, like a resolver that has
// not listed the peer's namespace yet.
type fickleID struct {
	fakeID
	known bool
}

func (f *fickleID) Identify(e *event.TCP) identity.Pair {
	p := f.fakeID.Identify(e)
	if !f.known {
		p.Destination.Name = identity.World
	}
	return p
}

func TestSweptSocketIsNamedAgainBeforeCounting(t *testing.T) {
	id := &fickleID{}
	tb := NewTable(zap.NewNop(), id, DefaultOptions())
	tb.Apply(clientEvent(event.Snapshot, 9, 100, 100))
	id.known = true
	tb.Apply(clientEvent(event.Snapshot, 9, 150, 130))
	if got := value(t, tb, "strata_tcp_sent_bytes_total", labels); got != 50 {
		t.Fatalf("sent = %v on the real pair, want 50", got)
	}
	if got := value(t, tb, "strata_tcp_active_connections", labels); got != 1 {
		t.Fatalf("active = %v on the real pair, want 1", got)
	}
	world := strings.Replace(labels, `destination_workload="web"`, `destination_workload="world"`, 1)
	if got := value(t, tb, "strata_tcp_active_connections", world); got != 0 {
		t.Fatalf("active = %v on the provisional pair, want 0", got)
	}
}

func TestFailedConnectResults(t *testing.T) {
	tb := NewTable(zap.NewNop(), &fakeID{}, DefaultOptions())
	for _, errno := range []syscall.Errno{syscall.ECONNREFUSED, syscall.ECONNREFUSED, syscall.ETIMEDOUT, 0, syscall.ECONNRESET, syscall.EHOSTUNREACH} {
		e := clientEvent(event.ConnectFailed, 3, 0, 0)
		e.Err = errno
		tb.Apply(e)
	}
	for result, want := range map[string]float64{"refused": 2, "timeout": 2, "reset": 1, "other": 1} {
		if got := value(t, tb, "strata_tcp_connections_total", labels+`,result="`+result+`"`); got != want {
			t.Errorf("%s = %v, want %v", result, got, want)
		}
	}
	if strings.Contains(scrape(t, tb, "strata_tcp_connections_total"), `"success"`) {
		t.Error("a failed connect counted as success")
	}
}

func TestResetsByDirection(t *testing.T) {
	tb := NewTable(zap.NewNop(), &fakeID{}, DefaultOptions())
	tb.Apply(clientEvent(event.Connect, 5, 1, 0))
	tb.Apply(clientEvent(event.ResetReceived, 5, 0, 0))
	tb.Apply(clientEvent(event.ResetSent, 6, 0, 0)) // unknown socket: identified from its addresses
	if got := value(t, tb, "strata_tcp_resets_total", labels+`,direction="received"`); got != 1 {
		t.Errorf("received = %v", got)
	}
	if got := value(t, tb, "strata_tcp_resets_total", labels+`,direction="sent"`); got != 1 {
		t.Errorf("sent = %v", got)
	}
}

// An aborting close reaches CLOSE before its RST goes out: the reset still
// belongs to the connection's pair, not to whatever its addresses resolve to now.
func TestResetAfterCloseKeepsThePair(t *testing.T) {
	tb := NewTable(zap.NewNop(), &fakeID{}, DefaultOptions())
	tb.Apply(clientEvent(event.Connect, 5, 1, 0))
	tb.Apply(clientEvent(event.Close, 5, 1, 0))
	late := clientEvent(event.ResetSent, 5, 0, 0)
	late.Comm = "someone-else" // what identifying it afresh would say
	tb.Apply(late)
	if got := value(t, tb, "strata_tcp_resets_total", labels+`,direction="sent"`); got != 1 {
		t.Errorf("sent = %v, want 1 on the closed connection's pair", got)
	}
}

func TestSweepDropsVanishedSockets(t *testing.T) {
	tb := NewTable(zap.NewNop(), &fakeID{}, DefaultOptions())
	tb.Apply(clientEvent(event.Connect, 1, 1, 0))
	tb.Apply(clientEvent(event.Connect, 2, 1, 0))
	end := func(gen uint32, drops uint64, seen ...uint64) {
		for _, s := range seen {
			e := clientEvent(event.Snapshot, s, 1, 0)
			e.Sweep = gen
			tb.Apply(e)
		}
		tb.Apply(&event.TCP{Kind: event.SweepEnd, Netns: 1, Sweep: gen, Drops: drops})
	}
	end(1, 0, 1) // socket 2 missed once: it may have been born after the walk passed
	if tb.Tracked() != 2 {
		t.Fatalf("tracked = %d after one miss", tb.Tracked())
	}
	end(2, 5, 1) // this sweep lost snapshots: proves nothing
	if tb.Tracked() != 2 {
		t.Fatalf("tracked = %d after a lossy sweep", tb.Tracked())
	}
	end(3, 5, 1)
	if tb.Tracked() != 1 {
		t.Fatalf("tracked = %d, want 1 after two complete misses", tb.Tracked())
	}
	if got := value(t, tb, "strata_tcp_active_connections", labels); got != 1 {
		t.Fatalf("active = %v, want 1", got)
	}
	// Another namespace's sweep never touches these sockets.
	tb.Apply(&event.TCP{Kind: event.SweepEnd, Netns: 2, Sweep: 4, Drops: 5})
	tb.Apply(&event.TCP{Kind: event.SweepEnd, Netns: 2, Sweep: 5, Drops: 5})
	if tb.Tracked() != 1 {
		t.Fatalf("tracked = %d after other namespace's sweeps", tb.Tracked())
	}
}

func TestBudgetsFoldIntoOther(t *testing.T) {
	opts := DefaultOptions()
	opts.Budgets.Labels["source_workload"] = 3
	tb := NewTable(zap.NewNop(), &fakeID{}, opts)
	for i := 0; i < 10; i++ {
		e := clientEvent(event.ConnectFailed, uint64(i), 0, 0)
		e.Comm = string(rune('a' + i))
		tb.Apply(e)
	}
	out := scrape(t, tb, "strata_tcp_connections_total")
	if n := strings.Count(out, "strata_tcp_connections_total"); n != 4 {
		t.Fatalf("%d series, want 3 named + ~other:\n%s", n, out)
	}
	other := strings.Replace(labels, `source_workload="client-a"`, `source_workload="~other"`, 1)
	if got := value(t, tb, "strata_tcp_connections_total", other+`,result="timeout"`); got != 7 {
		t.Fatalf("~other = %v, want 7", got)
	}
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(tb)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP strata_agent_overflow_total Label values folded into ~other because a budget was full.
# TYPE strata_agent_overflow_total counter
strata_agent_overflow_total{label="destination_namespace"} 0
strata_agent_overflow_total{label="destination_port"} 0
strata_agent_overflow_total{label="destination_service"} 0
strata_agent_overflow_total{label="destination_workload"} 0
strata_agent_overflow_total{label="flows"} 0
strata_agent_overflow_total{label="source_namespace"} 0
strata_agent_overflow_total{label="source_workload"} 7
`), "strata_agent_overflow_total"); err != nil {
		t.Fatal(err)
	}
}

func TestMaxFlowsBoundsMemory(t *testing.T) {
	opts := DefaultOptions()
	opts.Budgets.Flows = 50
	tb := NewTable(zap.NewNop(), &fakeID{}, opts)
	for i := 0; i < 5000; i++ {
		e := clientEvent(event.ConnectFailed, uint64(i), 0, 0)
		e.Remote = netip.AddrPortFrom(srv.Addr(), uint16(1000+i)) // a port scan
		tb.Apply(e)
	}
	if len(tb.flows) > 51 {
		t.Fatalf("%d flows, want at most 50 + the overflow flow", len(tb.flows))
	}
}

// events records what the table sends to Loki, as lines.
type events []string

func (ev *events) Push(e emit.Event) bool {
	*ev = append(*ev, e.Kind+" ns="+e.Namespace+" "+loki.Line(e))
	return true
}

func TestRetransmitBurstOncePerBurst(t *testing.T) {
	opts := DefaultOptions()
	opts.BurstSegments = 3
	var ev events
	opts.Events = &ev
	tb := NewTable(zap.NewNop(), &fakeID{}, opts)
	now := time.Unix(0, 0)
	tb.now = func() time.Time { return now }
	tb.Apply(clientEvent(event.Connect, 1, 1, 0))
	for i := 0; i < 10; i++ {
		tb.Apply(clientEvent(event.Retransmit, 1, 0, 0))
	}
	now = now.Add(2 * time.Second)
	for i := 0; i < 3; i++ {
		tb.Apply(clientEvent(event.Retransmit, 1, 0, 0))
	}
	line := "retransmit_burst ns= source_workload=client-a destination_workload=web destination_port=80 reporter=client source_addr=10.0.0.1:40000 destination_addr=10.0.0.2:80 segments=3 within=1s"
	if want := []string{line, line}; strings.Join(ev, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant (one per burst):\n%s", strings.Join(ev, "\n"), strings.Join(want, "\n"))
	}
}

func TestConnectionEvents(t *testing.T) {
	opts := DefaultOptions()
	var ev events
	opts.Events = &ev
	tb := NewTable(zap.NewNop(), &fakeID{}, opts)
	refused := clientEvent(event.ConnectFailed, 1, 0, 0)
	refused.Err = syscall.ECONNREFUSED
	refusal := clientEvent(event.ResetReceived, 1, 0, 0) // the RST that refuses it, before the failure
	refusal.State = event.StateSynSent
	tb.Apply(refusal)
	tb.Apply(refused)
	abandoned := clientEvent(event.ConnectFailed, 2, 0, 0)
	tb.Apply(abandoned)
	// The server's view of a reset it received: its peer is the source.
	rst := &event.TCP{Kind: event.ResetReceived, Sock: 3, Netns: 1, Comm: "b", Local: srv, Remote: cli, State: event.StateEstablished}
	tb.Apply(rst)
	sent := clientEvent(event.ResetSent, 4, 0, 0)
	tb.Apply(sent)
	want := []string{
		"connect_failed ns= source_workload=client-a destination_workload=web destination_port=80 reporter=client source_addr=10.0.0.1:40000 destination_addr=10.0.0.2:80 error=refused errno=ECONNREFUSED",
		"connect_failed ns= source_workload=client-a destination_workload=web destination_port=80 reporter=client source_addr=10.0.0.1:40000 destination_addr=10.0.0.2:80 error=timeout errno=none",
		"reset ns= source_workload=client-b destination_workload=web destination_port=80 reporter=server source_addr=10.0.0.1:40000 destination_addr=10.0.0.2:80 direction=received",
		"reset ns= source_workload=client-a destination_workload=web destination_port=80 reporter=client source_addr=10.0.0.1:40000 destination_addr=10.0.0.2:80 direction=sent",
	}
	if strings.Join(ev, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(ev, "\n"), strings.Join(want, "\n"))
	}
	// Resets: the server's received one and the client's sent one, no more.
	if got := strings.Count(scrape(t, tb, "strata_tcp_resets_total"), "counter:{value:1}"); got != 2 {
		t.Errorf("%d reset series, want 2 (the refusal is no reset):\n%s", got, scrape(t, tb, "strata_tcp_resets_total"))
	}
}

// Closed sockets are remembered for the events that trail their close:
// at least the last maxClosed of them, at most twice that.
func TestClosedSocketsBounded(t *testing.T) {
	tb := NewTable(zap.NewNop(), &fakeID{}, DefaultOptions())
	const n = 3*maxClosed + 17
	events := make([]*event.TCP, n)
	for i := range n {
		e := clientEvent(event.Connect, uint64(1000+i%300), 0, 0) // addresses reused, as the kernel does
		e.Local = netip.AddrPortFrom(cli.Addr(), uint16(1024+i))
		tb.Apply(e)
		c := *e
		c.Kind = event.Close
		tb.Apply(&c)
		events[i] = &c
	}
	if got := len(tb.closed) + len(tb.older); got < maxClosed || got > 2*maxClosed {
		t.Fatalf("%d closed sockets remembered, want [%d, %d]", got, maxClosed, 2*maxClosed)
	}
	for i, e := range events[n-maxClosed:] {
		if tb.connOf(e) == nil {
			t.Fatalf("closed socket %d of the last %d forgotten", i, maxClosed)
		}
	}
	if tb.connOf(events[0]) != nil {
		t.Fatal("the first closed socket is still remembered")
	}
}

// The sweep reads HTTP counts only in namespaces where the table follows
// live sockets.
func TestHolds(t *testing.T) {
	tb := NewTable(zap.NewNop(), &fakeID{}, DefaultOptions())
	if tb.Holds(1) {
		t.Fatal("an empty table holds namespace 1")
	}
	tb.Apply(clientEvent(event.Connect, 1, 0, 0))
	tb.Apply(clientEvent(event.Connect, 2, 0, 0))
	if !tb.Holds(1) || tb.Holds(2) {
		t.Fatalf("Holds(1) = %v, Holds(2) = %v; want true, false", tb.Holds(1), tb.Holds(2))
	}
	tb.Apply(clientEvent(event.Close, 1, 0, 0))
	if !tb.Holds(1) {
		t.Fatal("one of two sockets closed: namespace 1 no longer held")
	}
	tb.Apply(clientEvent(event.Close, 2, 0, 0))
	if tb.Holds(1) {
		t.Fatal("namespace 1 held after its last socket closed")
	}
}
