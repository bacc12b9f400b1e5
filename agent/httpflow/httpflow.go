// Package httpflow pairs HTTP requests with their responses per socket and
// aggregates the durations into the contract's histograms.
package httpflow

import (
	"crypto/rand"
	"encoding/hex"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratanet/strata/agent/emit"
	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/agent/hist"
	"github.com/stratanet/strata/agent/route"
	"github.com/stratanet/strata/probes/event"
)

// Noanswer is the status_code of requests whose connection closed first.
const Noanswer = "0"

// Options bound what the table holds whatever the traffic.
type Options struct {
	// MaxSockets: sockets followed with requests in flight, and apart,
	// sockets whose exchanges the kernel counts; requests on more are
	// dropped and counted (strata_agent_http_records_total{outcome="dropped"}).
	MaxSockets int
	MaxPending int // requests in flight per socket (pipelining); more are dropped and counted
	MaxSeries  int // request series; requests of more are dropped and counted
	MaxRoutes  int // distinct routes; more fold into ~other
}

// DefaultOptions suit one node.
func DefaultOptions() Options {
	return Options{MaxSockets: 1 << 17, MaxPending: 64, MaxSeries: 20000, MaxRoutes: 500}
}

// IdleAfter forgets a socket with nothing in flight that has been quiet
// this long (its close may have been lost); it comes back with its next
// request. A request unanswered for five times as long ends as unanswered.
const IdleAfter = time.Minute

// TalliedIdle forgets a tallied socket that sent nothing for this long.
const TalliedIdle = time.Hour

// buckets are the kernel's too, for the exchanges it tallies.
var buckets = event.HTTPBuckets

type seriesKey struct {
	flow.Key
	server               bool
	method, status, path string
}

type histogram struct {
	hist.Histogram
	exemplars []*prometheus.Exemplar // latest per bucket, nil where none
}

// Table is the HTTP pairing and aggregation.
type Table struct {
	names     Namer
	opts      Options
	templater *route.Templater
	now       func() time.Time
	spans     emit.Spans                  // nil: no spans
	wall      func(mono uint64) time.Time // kernel monotonic ns to wall clock
	cluster   string
	// Events receives failed requests (5xx, or no answer) as http_error
	// events; nil: counted only. Set before the first record.
	Events emit.Events
	// Gone and GoneGrace drop the series of deleted workloads, as the flow
	// table does. Set before the first record.
	Gone      flow.GoneFunc
	GoneGrace time.Duration

	mu        sync.Mutex
	socks     map[uint64]*sock
	tallies   map[uint64]*tallied // by socket
	lastMono  uint64              // latest record's kernel time
	swept     time.Time           // last sweep for idle sockets
	pruned    time.Time           // last look for series of deleted workloads
	series    map[seriesKey]*histogram
	routes    map[string]string // each route kept once, as its own key
	unpaired  uint64            // responses with no request in flight
	malformed uint64            // records that were not HTTP after all
	dropped   uint64            // requests not followed because a bound was reached
	late      flow.Late[done]   // requests waiting for their ends' names
	who       event.TCP         // scratch for the namer (complete)
	wait      flow.Wait         // scratch for the namer (complete)
}

// New makes a table; spans may be nil. wall converts kernel time.
func New(names Namer, routes *route.Templater, spans emit.Spans, wall func(uint64) time.Time, cluster string, opts Options) *Table {
	return &Table{names: names, opts: opts, templater: routes, now: time.Now, spans: spans, wall: wall, cluster: cluster,
		socks: map[uint64]*sock{}, tallies: map[uint64]*tallied{}, series: map[seriesKey]*histogram{}, routes: map[string]string{}}
}

// Tick counts the requests whose names came, and forgets sockets whose
// close went unseen. The agent calls it about once a second; it looks for
// idle sockets only every IdleAfter/4.
func (t *Table) Tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.settle()
	now := t.now()
	if t.Gone != nil && now.Sub(t.pruned) >= flow.PruneEvery(t.GoneGrace) {
		t.pruned = now
		for k := range t.series {
			if flow.GoneFor(t.Gone, t.GoneGrace, now,
				[2]string{k.SourceNamespace, k.SourceWorkload}, [2]string{k.DestinationNamespace, k.DestinationWorkload}) {
				delete(t.series, k)
			}
		}
	}
	if now.Sub(t.swept) < IdleAfter/4 {
		return
	}
	t.swept = now
	for addr, ts := range t.tallies {
		// A final tally lost in a full ring, or a socket quiet for so long
		// that its state goes (its next counts are then counted as dropped).
		if (!ts.closed.IsZero() && now.Sub(ts.closed) > IdleAfter) || now.Sub(ts.seen) > TalliedIdle {
			t.forget(addr)
		}
	}
	for addr, s := range t.socks {
		switch idle := t.lastMono - s.last; {
		case len(s.queue) == 0 && idle > uint64(IdleAfter):
			delete(t.socks, addr)
		case idle > uint64(5*IdleAfter):
			t.end(addr, s, s.last)
		}
	}
}

func (t *Table) observe(d done) {
	key := d.key
	p, status, end := d.p, d.status, d.end
	k := seriesKey{Key: key, server: d.server, method: p.method, status: status, path: p.route}
	h := t.histogram(k)
	if h == nil {
		t.dropped++
		if d.slot != nil {
			d.slot.lost = &t.dropped
			t.dropped += d.slot.held.Count()
		}
		return
	}
	if sl := d.slot; sl != nil { // the slot's counts go here from now on
		sl.key, sl.named = k, true
		h.Add(&sl.held)
		sl.held = hist.Histogram{}
	}
	secs := 0.0
	if end > p.at {
		secs = float64(end-p.at) / 1e9
	}
	i := h.Observe(buckets, secs)

	trace := p.parent.trace
	if trace == [16]byte{} && t.spans != nil {
		rand.Read(trace[:]) // a new trace, rooted at this span
	}
	if t.Events != nil && (status == Noanswer || status[0] == '5') {
		t.failed(d, secs, trace)
	}
	if trace == [16]byte{} {
		return // nothing to point an exemplar at
	}
	h.exemplars[i] = &prometheus.Exemplar{Value: secs, Timestamp: t.wall(end),
		Labels: prometheus.Labels{"trace_id": hex.EncodeToString(trace[:])}}
	if t.spans != nil {
		t.spans.Export(t.span(d, key, trace))
	}
}

// histogram is series k, made if there is room; nil if not.
func (t *Table) histogram(k seriesKey) *histogram {
	h := t.series[k]
	if h == nil {
		if len(t.series) >= t.opts.MaxSeries {
			return nil
		}
		h = &histogram{exemplars: make([]*prometheus.Exemplar, len(buckets)+1)}
		t.series[k] = h
	}
	return h
}
