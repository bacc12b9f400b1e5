package flow

import (
	"fmt"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"

	"github.com/stratanet/strata/agent/scrapetest"
	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

// lockedCollect is Collect as it was before scrapes snapshotted: every
// series built and sent under the table's lock. Kept as the benchmark's
// baseline and as the oracle the snapshot must match exactly.
type lockedCollect struct{ t *Table }

func (lockedCollect) Describe(chan<- *prometheus.Desc) {}

func (l lockedCollect) Collect(ch chan<- prometheus.Metric) {
	t := l.t
	t.mu.Lock()
	defer t.mu.Unlock()

	series := map[string]int{}
	emit := func(name string, m prometheus.Metric, n int) {
		series[name] += n
		ch <- m
	}
	counter := func(d *prometheus.Desc, name string, v uint64, labels ...string) {
		emit(name, prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...), 1)
	}
	for k, s := range t.flows {
		lv := k.Values()
		with := func(extra string) []string { return append(append([]string{}, lv...), extra) }
		for r, n := range s.connections {
			if n > 0 {
				counter(connectionsDesc, "strata_tcp_connections_total", n, with(resultNames[r])...)
			}
		}
		emit("strata_tcp_active_connections", prometheus.MustNewConstMetric(activeDesc, prometheus.GaugeValue, float64(s.active), lv...), 1)
		counter(sentDesc, "strata_tcp_sent_bytes_total", s.sent, lv...)
		counter(receivedDesc, "strata_tcp_received_bytes_total", s.received, lv...)
		counter(retransDesc, "strata_tcp_retransmits_total", s.retransmits, lv...)
		if s.resetsSent > 0 {
			counter(resetsDesc, "strata_tcp_resets_total", s.resetsSent, with("sent")...)
		}
		if s.resetsReceived > 0 {
			counter(resetsDesc, "strata_tcp_resets_total", s.resetsReceived, with("received")...)
		}
		if s.rtt.Count() > 0 {
			emit("strata_tcp_rtt_seconds", s.rtt.Metric(rttDesc, rttBuckets, lv...), len(rttBuckets)+3)
		}
	}
	for _, label := range KeyLabels {
		if _, ok := t.gov.budgets.Labels[label]; ok {
			ch <- prometheus.MustNewConstMetric(overflowDesc, prometheus.CounterValue, float64(t.gov.overflow[label]), label)
		}
	}
	ch <- prometheus.MustNewConstMetric(overflowDesc, prometheus.CounterValue, float64(t.gov.overflow["flows"]), "flows")
	for name, n := range series {
		ch <- prometheus.MustNewConstMetric(seriesDesc, prometheus.GaugeValue, float64(n), name)
	}
	ch <- prometheus.MustNewConstMetric(trackedDesc, prometheus.GaugeValue, float64(len(t.conns)))
	ch <- prometheus.MustNewConstMetric(untrackedDesc, prometheus.CounterValue, float64(t.untracked))
	ch <- prometheus.MustNewConstMetric(staleDesc, prometheus.CounterValue, float64(t.stale))
}

// exposition is everything c collects, one line per series, sorted.
func exposition(t testing.TB, c prometheus.Collector) []string {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			out = append(out, mf.GetName()+" "+m.String())
		}
	}
	return out
}

// busyTable has every kind of value the table exposes: successes and each
// failure, resets both ways, retransmits, RTTs, folded labels, a full
// flows budget, untracked and stale sockets.
func busyTable(t testing.TB) *Table {
	opts := DefaultOptions()
	opts.MaxConns = 50
	opts.Budgets.Flows = 40
	opts.Budgets.Labels["source_workload"] = 12
	tb := NewTable(zap.NewNop(), &fakeID{}, opts)
	for i := range 80 {
		local := netip.AddrPortFrom(cli.Addr(), uint16(20000+i))
		remote := netip.AddrPortFrom(srv.Addr(), uint16(8000+i%7))
		e := &event.TCP{Kind: event.Connect, Sock: uint64(1000 + i), Netns: uint32(1 + i%2), Comm: fmt.Sprint("c", i%15), PID: 1,
			Local: local, Remote: remote, State: event.StateEstablished}
		tb.Apply(e)
		s := *e
		s.Kind, s.Sweep = event.Snapshot, 1
		s.Counters = event.Counters{SentBytes: uint64(100 * i), ReceivedBytes: uint64(7 * i), Retransmits: uint64(i % 3), SRTT: time.Duration(i) * 37 * time.Microsecond}
		tb.Apply(&s)
		switch i % 4 {
		case 0:
			f := *e
			f.Kind, f.Err = event.ConnectFailed, []syscall.Errno{syscall.ECONNREFUSED, syscall.ETIMEDOUT, syscall.ECONNRESET, syscall.EHOSTUNREACH}[i%16/4]
			tb.Apply(&f)
		case 1:
			r := *e
			r.Kind = event.ResetSent
			tb.Apply(&r)
		case 2:
			r := *e
			r.Kind = event.ResetReceived
			tb.Apply(&r)
			c := s
			c.Kind = event.Close
			c.SentBytes += 11
			tb.Apply(&c)
		}
	}
	// Two complete sweeps of namespace 2 that saw nothing: its sockets go stale.
	tb.Apply(&event.TCP{Kind: event.SweepEnd, Netns: 2, Sweep: 2})
	tb.Apply(&event.TCP{Kind: event.SweepEnd, Netns: 2, Sweep: 3})
	return tb
}

func TestSnapshotExposesExactlyWhatTheLockedCollectDid(t *testing.T) {
	tb := busyTable(t)
	want := exposition(t, lockedCollect{tb})
	got := exposition(t, tb)
	scrapetest.Same(t, got, want)
	// Every kind of value is in there, so the comparison means something.
	if tb.untracked == 0 || tb.stale == 0 || tb.gov.overflow["flows"] == 0 || tb.gov.overflow["source_workload"] == 0 {
		t.Fatalf("busyTable lacks a case: untracked %d stale %d overflow %v", tb.untracked, tb.stale, tb.gov.overflow)
	}
	// Again, with the buffers reused after the table changed.
	for i := range 5 {
		tb.Apply(clientEvent(event.Connect, uint64(5000+i), 0, 0))
	}
	scrapetest.Same(t, exposition(t, tb), exposition(t, lockedCollect{tb}))
}

// A scrape holds the table's lock only while it copies: once it is
// sending, the event loop gets the lock at once, whatever the consumer
// does, and the scrape still exposes the values of its snapshot.
func TestScrapeSendsWithoutTheLock(t *testing.T) {
	tb := busyTable(t)
	before := scrapetest.Lines(t, scrapetest.Collect(lockedCollect{tb}))
	ch := make(chan prometheus.Metric) // unbuffered: Collect waits on each send
	go func() { tb.Collect(ch); close(ch) }()
	ms := []prometheus.Metric{<-ch} // Collect is past its snapshot now, parked on a send
	if !tb.mu.TryLock() {
		t.Fatal("the table's lock is held while the scrape sends its metrics")
	}
	tb.mu.Unlock()
	for i := range 40 { // the loop goes on meanwhile
		e := clientEvent(event.Connect, uint64(9000+i), 0, 0)
		e.Comm = "late"
		tb.Apply(e)
	}
	tb.Tick()
	for m := range ch {
		ms = append(ms, m)
	}
	after := scrapetest.Lines(t, scrapetest.Collect(lockedCollect{tb}))
	if fmt.Sprint(after) == fmt.Sprint(before) {
		t.Fatal("the events applied during the scrape changed nothing")
	}
	scrapetest.Same(t, scrapetest.Lines(t, ms), before)
}

// The lock is held for one chunk of the copy at a time: each hold copies
// at most copyChunk flows and allocates nothing (the room was made before,
// outside the lock), and a scrape of n flows holds it ceil(n/copyChunk)
// times.
func TestCopyIsChunkedAndAllocatesNothing(t *testing.T) {
	n := 2*copyChunk + 100
	tb, _ := bigTable(n)
	for scrape := range 2 { // the second reuses the first's buffers
		s := &tb.snap
		s.flows = s.flows[:0]
		holds := 0
		for done := false; !done; holds++ {
			s.reserve(copyChunk)
			before := len(s.flows)
			var m0, m1 runtime.MemStats
			tb.mu.Lock()
			runtime.ReadMemStats(&m0)
			done = tb.copyFlows(s)
			runtime.ReadMemStats(&m1)
			tb.mu.Unlock()
			if got := len(s.flows) - before; got > copyChunk || got == 0 {
				t.Fatalf("scrape %d, hold %d copied %d flows, want 1 to %d", scrape, holds, got, copyChunk)
			}
			if a := m1.Mallocs - m0.Mallocs; a != 0 {
				t.Fatalf("scrape %d, hold %d: %d allocations under the lock", scrape, holds, a)
			}
		}
		if want := (n + copyChunk - 1) / copyChunk; holds != want || len(tb.snap.flows) != n {
			t.Fatalf("scrape %d: %d holds for %d flows, want %d for %d", scrape, holds, len(tb.snap.flows), want, n)
		}
	}
	scrapetest.Same(t, exposition(t, tb), exposition(t, lockedCollect{tb}))
}

// nsID is fakeID with namespaces, so that workloads can be deleted.
type nsID struct{ fakeID }

func (n *nsID) Identify(e *event.TCP) identity.Pair {
	p := n.fakeID.Identify(e)
	p.Source.Namespace, p.Destination.Namespace = "shop", "shop"
	return p
}

// A prune between two chunks reorders the flows: the copy starts again
// and exposes exactly the flows left.
func TestPruneDuringACopy(t *testing.T) {
	opts := DefaultOptions()
	opts.Budgets.Labels["destination_port"] = 5000
	opts.Gone = func(ns, wl string) (time.Time, bool) { return time.Unix(0, 0), wl == "client-gone" }
	opts.GoneGrace = time.Second
	tb := NewTable(zap.NewNop(), &nsID{}, opts)
	for i := range 3 * copyChunk {
		e := clientEvent(event.ConnectFailed, uint64(i), 0, 0)
		e.Remote = netip.AddrPortFrom(srv.Addr(), uint16(1+i/2))
		e.Err = syscall.ECONNREFUSED
		if i%2 == 0 {
			e.Comm = "gone"
		}
		tb.Apply(e)
	}
	s := &tb.snap
	s.flows = s.flows[:0]
	s.reserve(copyChunk)
	tb.mu.Lock()
	if tb.copyFlows(s) {
		t.Fatal("one chunk copied every flow")
	}
	tb.prune(time.Now())
	tb.mu.Unlock()
	if len(tb.flows) != 3*copyChunk/2 {
		t.Fatalf("%d flows after the prune, want %d", len(tb.flows), 3*copyChunk/2)
	}
	for done := false; !done; {
		s.reserve(copyChunk)
		tb.mu.Lock()
		done = tb.copyFlows(s)
		tb.mu.Unlock()
	}
	if len(s.flows) != len(tb.flows) {
		t.Fatalf("copied %d flows, the table has %d", len(s.flows), len(tb.flows))
	}
	for _, f := range s.flows {
		if f.key.SourceWorkload == "client-gone" {
			t.Fatalf("a pruned flow was copied: %+v", f.key)
		}
	}
	scrapetest.Same(t, exposition(t, tb), exposition(t, lockedCollect{tb}))
}

// bigTable has n flows, each one live connection with an RTT, and the
// events that the loop applies to them: snapshots with growing counters.
func bigTable(n int) (*Table, []event.TCP) {
	opts := DefaultOptions()
	opts.Budgets.Flows = n
	opts.Budgets.Labels["destination_port"] = n
	tb := NewTable(zap.NewNop(), &benchID{}, opts)
	evs := make([]event.TCP, n)
	for i := range n {
		local := netip.AddrPortFrom(cli.Addr(), uint16(1024+i%60000))
		remote := netip.AddrPortFrom(srv.Addr(), uint16(1+i))
		evs[i] = event.TCP{Kind: event.Connect, Sock: uint64(1 + i), Netns: 1, Comm: "a", PID: 1, Local: local, Remote: remote, State: event.StateEstablished}
		tb.Apply(&evs[i])
		evs[i].Kind = event.Snapshot
		evs[i].SRTT = 300 * time.Microsecond
	}
	return tb, evs
}

// loop applies events as the agent's event loop does, and records the
// longest it waited for the table's lock.
type loop struct {
	worst   atomic.Int64 // ns
	applied atomic.Int64
	stop    chan struct{}
	done    sync.WaitGroup
}

func startLoop(tb *Table, evs []event.TCP) *loop {
	l := &loop{stop: make(chan struct{})}
	l.done.Add(1)
	go func() {
		defer l.done.Done()
		for i := 0; ; i++ {
			select {
			case <-l.stop:
				return
			default:
			}
			e := &evs[i%len(evs)]
			e.SentBytes += 100
			e.Sweep = uint32(i / len(evs))
			start := time.Now()
			tb.mu.Lock()
			waited := time.Since(start)
			tb.apply(e)
			tb.mu.Unlock()
			if w := int64(waited); w > l.worst.Load() {
				l.worst.Store(w)
			}
			l.applied.Add(1)
		}
	}()
	return l
}

func (l *loop) end() { close(l.stop); l.done.Wait() }

// BenchmarkGatherWhileApplying scrapes a table of 20 000 flows while a
// goroutine applies events to it, alternating the locked collect (before)
// and the snapshot (after) in one run: the gather's duration, the loop's
// longest wait for the lock, and the events it applied during each.
func BenchmarkGatherWhileApplying(b *testing.B) {
	tb, evs := bigTable(20000)
	l := startLoop(tb, evs)
	defer l.end()
	before, after := prometheus.NewRegistry(), prometheus.NewRegistry()
	before.MustRegister(lockedCollect{tb})
	after.MustRegister(tb)
	var gather, wait [3]time.Duration
	var worst [3]time.Duration
	var events [3]int64
	n := 0
	for b.Loop() {
		// The third is no scrape at all, as long as the last: how long
		// the loop "waits" on this machine anyway (preempted between its
		// clock reads, GC), the floor of the other two.
		for i, reg := range []*prometheus.Registry{before, after, nil} {
			l.worst.Store(0)
			a := l.applied.Load()
			start := time.Now()
			if reg == nil {
				time.Sleep(gather[1] / time.Duration(n+1))
			} else if _, err := reg.Gather(); err != nil {
				b.Fatal(err)
			}
			gather[i] += time.Since(start)
			w := time.Duration(l.worst.Load())
			wait[i] += w
			worst[i] = max(worst[i], w)
			events[i] += l.applied.Load() - a
		}
		n++
	}
	ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) / float64(n) }
	b.ReportMetric(0, "ns/op")
	b.ReportMetric(ms(gather[0]), "before-gather-ms")
	b.ReportMetric(ms(gather[1]), "after-gather-ms")
	b.ReportMetric(ms(wait[0]), "before-wait-ms")
	b.ReportMetric(ms(wait[1]), "after-wait-ms")
	b.ReportMetric(float64(worst[0])/1e6, "before-worst-wait-ms")
	b.ReportMetric(float64(worst[1])/1e6, "after-worst-wait-ms")
	b.ReportMetric(float64(events[0])/float64(n), "before-events/gather")
	b.ReportMetric(float64(events[1])/float64(n), "after-events/gather")
	b.ReportMetric(ms(wait[2]), "idle-wait-ms")
	b.ReportMetric(float64(worst[2])/1e6, "idle-worst-wait-ms")
}

// BenchmarkCopy is what the loop can wait for: one hold of the lock by a
// scrape of 20 000 flows (one chunk), and the whole copy.
func BenchmarkCopy(b *testing.B) {
	tb, _ := bigTable(20000)
	s := &tb.snap
	var holds, longest time.Duration
	n := 0
	for b.Loop() {
		s.flows = s.flows[:0]
		for done := false; !done; n++ {
			s.reserve(copyChunk)
			start := time.Now()
			tb.mu.Lock()
			done = tb.copyFlows(s)
			tb.mu.Unlock()
			d := time.Since(start)
			holds += d
			longest = max(longest, d)
		}
	}
	b.ReportMetric(float64(holds)/float64(n)/1e3, "µs/hold")
	b.ReportMetric(float64(longest)/1e3, "longest-µs/hold")
}
