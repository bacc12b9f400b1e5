package flow

import (
	"strings"
	"testing"
	"time"

	"go.uber.org/zap"

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
	if len(tb.lates) != 0 {
		t.Errorf("%d connections still waiting", len(tb.lates))
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

func TestLaterWaitsForNames(t *testing.T) {
	id := &lateID{}
	tb := NewTable(zap.NewNop(), id, DefaultOptions())
	now := time.Unix(1000, 0)
	tb.now = func() time.Time { return now }
	var got []Key
	if _, ok := tb.Later(clientEvent(event.Connect, 5, 0, 0), func(k Key) { got = append(got, k) }); ok {
		t.Fatal("named at once though the client is not known")
	}
	tb.Tick()
	if len(got) != 0 {
		t.Fatalf("called before the name came: %+v", got)
	}
	id.known = true
	tb.Tick()
	if len(got) != 1 || got[0].SourceWorkload != "pod-a" || got[0].SourceNamespace != "shop" {
		t.Fatalf("named %+v, want shop/pod-a once", got)
	}
	tb.Tick()
	if len(got) != 1 {
		t.Errorf("called %d times", len(got))
	}
	// Known now: named at once.
	if k, ok := tb.Later(clientEvent(event.Connect, 6, 0, 0), func(Key) { t.Error("deferred") }); !ok || k.SourceWorkload != "pod-a" {
		t.Errorf("Later = %+v, %v", k, ok)
	}
}

// A record on a connection still waiting for names waits with it.
func TestLaterOnAWaitingConnection(t *testing.T) {
	id := &lateID{}
	tb := NewTable(zap.NewNop(), id, DefaultOptions())
	tb.now = func() time.Time { return time.Unix(1000, 0) }
	tb.Apply(clientEvent(event.Connect, 7, 1, 0))
	var got []Key
	if _, ok := tb.Later(clientEvent(event.Snapshot, 7, 0, 0), func(k Key) { got = append(got, k) }); ok {
		t.Fatal("named with a guess while its connection waits")
	}
	id.known = true
	tb.Tick()
	if len(got) != 1 || got[0].SourceWorkload != "pod-a" {
		t.Fatalf("named %+v, want pod-a once", got)
	}
	if k, ok := tb.Later(clientEvent(event.Snapshot, 7, 0, 0), nil); !ok || k.SourceWorkload != "pod-a" {
		t.Errorf("after the connection was named: %+v, %v", k, ok)
	}
}
