package flow

import (
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stratanet/strata/agent/emit"
	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

// lateID names the client "pod-a" once known is set; until then its
// answer is the process name, pending.
type lateID struct {
	fakeID
	known bool
	name  string // default pod-a
}

func (l *lateID) Identify(e *event.TCP) identity.Pair {
	p := l.fakeID.Identify(e)
	p.Pending = true
	return l.Retry(p, e)
}

func (l *lateID) Retry(p identity.Pair, e *event.TCP) identity.Pair {
	if p.Pending && l.known {
		p.Source = identity.Workload{Namespace: "shop", Name: "pod-a"}
		if l.name != "" {
			p.Source.Name = l.name
		}
		p.Pending = false
	}
	return p
}

const podLabels = `destination_namespace="",destination_port="80",destination_service="",destination_workload="web",reporter="client",source_namespace="shop",source_workload="pod-a"`

func TestLateNamesAreCountedOnce(t *testing.T) {
	id := &lateID{}
	tb := NewTable(zap.NewNop(), id, DefaultOptions())
	now := time.Unix(1000, 0)
	tb.now = func() time.Time { return now }

	// A connection opened and closed before its pod was known...
	tb.Apply(clientEvent(event.Connect, 1, 1, 0))
	tb.Apply(clientEvent(event.Close, 1, 101, 201))
	// ...and one still open.
	tb.Apply(clientEvent(event.Connect, 2, 1, 0))
	tb.Tick()
	if got := scrape(t, tb, "strata_tcp_connections_total"); got != "" {
		t.Fatalf("counted before the names came:\n%s", got)
	}
	id.known = true
	now = now.Add(time.Second)
	tb.Tick()
	for metric, want := range map[string]float64{
		"strata_tcp_sent_bytes_total":     100,
		"strata_tcp_received_bytes_total": 201,
		"strata_tcp_active_connections":   1,
	} {
		if got := value(t, tb, metric, podLabels); got != want {
			t.Errorf("%s = %v, want %v", metric, got, want)
		}
	}
	if got := value(t, tb, "strata_tcp_connections_total", podLabels+`,result="success"`); got != 2 {
		t.Errorf("connections = %v, want 2", got)
	}
	// Named now, the open one counts in place.
	tb.Apply(clientEvent(event.Close, 2, 51, 61))
	if got := value(t, tb, "strata_tcp_sent_bytes_total", podLabels); got != 150 {
		t.Errorf("sent after the second close = %v, want 150", got)
	}
	if got := value(t, tb, "strata_tcp_active_connections", podLabels); got != 0 {
		t.Errorf("active after the second close = %v, want 0", got)
	}
	if tb.lates.Len() != 0 {
		t.Errorf("%d connections still waiting", tb.lates.Len())
	}
}

func TestUnnamedConnectionsAreCountedAfterTheWindow(t *testing.T) {
	id := &lateID{}
	opts := DefaultOptions()
	opts.LateWindow = 5 * time.Second
	tb := NewTable(zap.NewNop(), id, opts)
	now := time.Unix(1000, 0)
	tb.now = func() time.Time { return now }
	tb.Apply(clientEvent(event.Connect, 1, 1, 0))
	now = now.Add(4 * time.Second)
	tb.Tick()
	if got := scrape(t, tb, "strata_tcp_connections_total"); got != "" {
		t.Fatalf("counted within the window:\n%s", got)
	}
	now = now.Add(time.Second)
	tb.Tick()
	if got := value(t, tb, "strata_tcp_connections_total", labels+`,result="success"`); got != 1 {
		t.Errorf("connections under the process name = %v, want 1", got)
	}
	if got := value(t, tb, "strata_tcp_active_connections", labels); got != 1 {
		t.Errorf("active = %v, want 1", got)
	}
}

func TestSeriesOfDeletedWorkloadsGo(t *testing.T) {
	id := &lateID{known: true}
	opts := DefaultOptions()
	opts.Budgets.Labels["source_workload"] = 1
	gone := map[string]time.Time{}
	opts.Gone = func(ns, name string) (time.Time, bool) { since, ok := gone[ns+"/"+name]; return since, ok }
	opts.GoneGrace = time.Minute
	tb := NewTable(zap.NewNop(), id, opts)
	now := time.Unix(1000, 0)
	tb.now = func() time.Time { return now }

	tb.Apply(clientEvent(event.Connect, 1, 1, 0))
	tb.Apply(clientEvent(event.Connect, 2, 1, 0))
	tb.Apply(clientEvent(event.Close, 1, 11, 1))
	gone["shop/pod-a"] = now
	now = now.Add(2 * time.Minute)
	tb.Tick()
	if got := value(t, tb, "strata_tcp_connections_total", podLabels+`,result="success"`); got != 2 {
		t.Fatalf("a series with an open connection was dropped: connections = %v", got)
	}
	tb.Apply(clientEvent(event.Close, 2, 21, 1))
	now = now.Add(time.Minute)
	tb.Tick()
	if got := scrape(t, tb, "strata_tcp_connections_total"); got != "" {
		t.Fatalf("series of a workload gone for 3m remain:\n%s", got)
	}
	// Its name no longer holds the one source_workload slot.
	id.name = "pod-b"
	delete(gone, "shop/pod-a")
	tb.Apply(clientEvent(event.Connect, 3, 1, 0))
	tb.Tick()
	if got := value(t, tb, "strata_tcp_connections_total", strings.Replace(podLabels, "pod-a", "pod-b", 1)+`,result="success"`); got != 1 {
		t.Errorf("a new workload after the drop: connections = %v, want 1", got)
	}
}

func TestNameWaitsForNames(t *testing.T) {
	id := &lateID{}
	opts := DefaultOptions()
	opts.LateWindow = 5 * time.Second
	tb := NewTable(zap.NewNop(), id, opts)
	now := time.Unix(1000, 0)
	tb.now = func() time.Time { return now }
	var w Wait
	if k, ok := tb.Name(clientEvent(event.Connect, 5, 0, 0), &w); ok {
		t.Fatalf("named %+v at once though the client is not known", k)
	}
	if k, ok := tb.Settle(&w); ok {
		t.Fatalf("settled on %+v before the name came", k)
	}
	id.known = true
	if k, ok := tb.Settle(&w); !ok || k.SourceWorkload != "pod-a" || k.SourceNamespace != "shop" {
		t.Fatalf("Settle = %+v, %v; want shop/pod-a", k, ok)
	}
	// Known now: named at once, w untouched.
	w = Wait{}
	if k, ok := tb.Name(clientEvent(event.Connect, 6, 0, 0), &w); !ok || k.SourceWorkload != "pod-a" || w != (Wait{}) {
		t.Errorf("Name = %+v, %v; wait %+v", k, ok, w)
	}

	// Never named: settled on the guess (the process name) once the window
	// is over, not before.
	id.known = false
	if _, ok := tb.Name(clientEvent(event.Connect, 7, 0, 0), &w); ok {
		t.Fatal("named at once though the client is not known")
	}
	now = now.Add(5*time.Second - 1)
	if k, ok := tb.Settle(&w); ok {
		t.Fatalf("settled on %+v within the window", k)
	}
	now = now.Add(1)
	if k, ok := tb.Settle(&w); !ok || k.SourceWorkload != "client-a" || k.SourceNamespace != "" {
		t.Errorf("Settle after the window = %+v, %v; want the process name client-a", k, ok)
	}
	// A caller whose Late is full passes no Wait: named at once, by guess.
	if k, ok := tb.Name(clientEvent(event.Connect, 8, 0, 0), nil); !ok || k.SourceWorkload != "client-a" {
		t.Errorf("Name without a Wait = %+v, %v; want client-a at once", k, ok)
	}
}

// A record on a connection still waiting for names waits with it: the same
// event and start, so both settle on the same names in the same tick.
func TestNameOnAWaitingConnection(t *testing.T) {
	id := &lateID{}
	tb := NewTable(zap.NewNop(), id, DefaultOptions())
	start := time.Unix(1000, 0)
	now := start
	tb.now = func() time.Time { return now }
	tb.Apply(clientEvent(event.Connect, 7, 1, 0))
	now = now.Add(3 * time.Second)
	var w Wait
	if _, ok := tb.Name(clientEvent(event.Snapshot, 7, 0, 0), &w); ok {
		t.Fatal("named with a guess while its connection waits")
	}
	if !w.since.Equal(start) || w.ev.Kind != event.Connect {
		t.Errorf("waits since %v with a %v event, want the connection's: %v, connect", w.since, w.ev.Kind, start)
	}
	id.known = true
	if k, ok := tb.Settle(&w); !ok || k.SourceWorkload != "pod-a" {
		t.Fatalf("Settle = %+v, %v; want pod-a", k, ok)
	}
	tb.Tick()
	if k, ok := tb.Name(clientEvent(event.Snapshot, 7, 0, 0), nil); !ok || k.SourceWorkload != "pod-a" {
		t.Errorf("after the connection was named: %+v, %v", k, ok)
	}
}

// Late keeps order, settles only what settle says is over, and bounds
// itself at maxLate.
func TestLateList(t *testing.T) {
	var l Late[int]
	waits := make([]Wait, maxLate)
	for i := range maxLate {
		if l.Full() {
			t.Fatalf("full at %d, want %d", i, maxLate)
		}
		waits[i].pair.Port = uint16(i)
		l.Add(&waits[i], i)
	}
	if !l.Full() || l.Len() != maxLate {
		t.Fatalf("after %d: full %v, len %d", maxLate, l.Full(), l.Len())
	}
	var got []int
	odd := func(w *Wait) (Key, bool) {
		return Key{DestinationPort: strconv.Itoa(int(w.pair.Port))}, w.pair.Port%2 == 1
	}
	l.Settle(odd, func(v int, k Key) {
		if k.DestinationPort != strconv.Itoa(v) {
			t.Errorf("%d settled with %+v", v, k)
		}
		got = append(got, v)
	})
	if len(got) != maxLate/2 || got[0] != 1 || got[1] != 3 || got[len(got)-1] != maxLate-1 || l.Len() != maxLate/2 || l.Full() {
		t.Fatalf("settled %d (first %v), %d left", len(got), got[:2], l.Len())
	}
	got = got[:0]
	l.Settle(func(w *Wait) (Key, bool) { return Key{}, true }, func(v int, _ Key) { got = append(got, v) })
	if len(got) != maxLate/2 || got[0] != 0 || got[1] != 2 || l.Len() != 0 {
		t.Errorf("second settle: %d (first %v), %d left", len(got), got[:2], l.Len())
	}
}

// A refused connect, a reset on a connection that waits for its names, and
// a reset on no connection the table follows wait like connections do:
// counted and told once, under the pod's name, at the time they came.
func TestOneOffEventsWaitForNames(t *testing.T) {
	id := &lateID{}
	opts := DefaultOptions()
	var ev timedEvents
	opts.Events = &ev
	tb := NewTable(zap.NewNop(), id, opts)
	start := time.Unix(1000, 0)
	now := start
	tb.now = func() time.Time { return now }

	refused := clientEvent(event.ConnectFailed, 1, 0, 0)
	refused.Err = syscall.ECONNREFUSED
	tb.Apply(refused)
	tb.Apply(clientEvent(event.Connect, 2, 1, 0))
	tb.Apply(clientEvent(event.ResetSent, 2, 0, 0))     // on the waiting connection
	tb.Apply(clientEvent(event.ResetReceived, 3, 0, 0)) // on none the table follows
	now = now.Add(500 * time.Millisecond)
	tb.Tick()
	if len(ev.lines) != 0 || scrape(t, tb, "strata_tcp_connections_total", "strata_tcp_resets_total") != "" {
		t.Fatalf("told or counted before the names came: %v\n%s", ev.lines, scrape(t, tb, "strata_tcp_connections_total", "strata_tcp_resets_total"))
	}
	id.known = true
	now = now.Add(500 * time.Millisecond)
	tb.Tick()
	for series, want := range map[string]float64{
		`strata_tcp_connections_total{` + podLabels + `,result="refused"}`: 1,
		`strata_tcp_connections_total{` + podLabels + `,result="success"}`: 1,
		`strata_tcp_resets_total{` + podLabels + `,direction="sent"}`:      1,
		`strata_tcp_resets_total{` + podLabels + `,direction="received"}`:  1,
	} {
		name, l, _ := strings.Cut(strings.TrimSuffix(series, "}"), "{")
		if got := value(t, tb, name, l); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if got := strings.Count(scrape(t, tb, "strata_tcp_connections_total", "strata_tcp_resets_total"), "label:"); got == 0 {
		t.Fatal("no series")
	}
	if len(ev.lines) != 3 {
		t.Fatalf("%d events, want 3: %v", len(ev.lines), ev.lines)
	}
	for i, line := range ev.lines {
		if !strings.Contains(line, "ns=shop source_namespace=shop source_workload=pod-a") || !ev.times[i].Equal(start) {
			t.Errorf("event at %v, want %v, under the pod's name: %s", ev.times[i], start, line)
		}
	}
	if tb.oneOffs.Len() != 0 || tb.lates.Len() != 0 {
		t.Errorf("still waiting: %d one-offs, %d connections", tb.oneOffs.Len(), tb.lates.Len())
	}
}

// timedEvents keeps each event's line and time.
type timedEvents struct {
	lines events
	times []time.Time
}

func (ev *timedEvents) Push(e emit.Event) bool {
	ev.times = append(ev.times, e.Time)
	return ev.lines.Push(e)
}
