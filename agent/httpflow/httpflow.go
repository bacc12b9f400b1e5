// Package httpflow pairs HTTP requests with their responses per socket and
// aggregates the durations into the contract's histograms.
package httpflow

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/agent/hist"
	"github.com/stratanet/strata/agent/route"
	"github.com/stratanet/strata/exporters/tempo"
	"github.com/stratanet/strata/probes/event"
)

// Noanswer is the status_code of requests whose connection closed first.
const Noanswer = "0"

// Limits that keep memory bounded whatever the traffic.
const (
	maxPending = 64      // requests in flight per socket (pipelining)
	maxSockets = 1 << 17 // sockets with requests in flight
	maxSeries  = 20000
	maxRoutes  = 500 // distinct routes; more fold into ~other
)

// Settle is how long a completed request waits before it is named: the
// connection's own records travel another ring buffer and may trail it by
// up to a poll interval.
const Settle = 300 * time.Millisecond

// maxSettling bounds the requests waiting to settle; beyond, the oldest
// are named at once.
const maxSettling = 1 << 16

// IdleAfter forgets a socket with nothing in flight that has been quiet
// this long (its close may have been lost); it comes back with its next request.
const IdleAfter = time.Minute

// Grace after a socket closed during which its last responses may still
// arrive: they travel through another ring buffer than the close.
const Grace = time.Second

var buckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .075, .1, .25, .5, .75, 1, 2.5, 5, 7.5, 10}

type pending struct {
	at     uint64 // kernel ns
	method string
	route  string
	parent traceparent
}

// traceparent is a W3C trace context, zero when the request had none.
type traceparent struct {
	trace [16]byte
	span  [8]byte
}

func parseTraceparent(v string) (traceparent, bool) {
	// 00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>
	var tp traceparent
	if len(v) < 55 || v[2] != '-' || v[35] != '-' || v[52] != '-' {
		return tp, false
	}
	if _, err := hex.Decode(tp.trace[:], []byte(v[3:35])); err != nil {
		return tp, false
	}
	if _, err := hex.Decode(tp.span[:], []byte(v[36:52])); err != nil {
		return tp, false
	}
	if tp.trace == [16]byte{} || tp.span == [8]byte{} {
		return tp, false
	}
	return tp, true
}

type sock struct {
	server bool
	start  uint64 // kernel ns of its first record
	last   uint64 // kernel ns of its latest record
	// who, for naming the pair when a request completes: by then the
	// connection's own records (another ring buffer) have arrived.
	who        event.TCP
	queue      []pending
	closedAt   time.Time // zero while open
	closedMono uint64
}

// done is a completed request waiting to be named and counted.
type done struct {
	at     time.Time
	key    flow.Key
	named  bool // key holds the connection's own pair
	who    event.TCP
	server bool
	p      pending
	status string
	end    uint64
}

type seriesKey struct {
	flow.Key
	server               bool
	method, status, path string
}

type histogram struct {
	hist.Histogram
	exemplars []*prometheus.Exemplar // latest per bucket, nil where none
}

// Spans receives one span per completed request.
type Spans interface {
	Export(tempo.Span) bool
}

// Namer names a socket's pair (e.Kind is Accept for the server end):
// Lookup only from the connection's own records, KeyFor also by resolving
// its addresses afresh.
type Namer interface {
	Lookup(e *event.TCP) (flow.Key, bool)
	KeyFor(e *event.TCP) flow.Key
}

// Table is the HTTP pairing and aggregation.
type Table struct {
	names     Namer
	templater *route.Templater
	now       func() time.Time
	spans     Spans                       // nil: no spans
	wall      func(mono uint64) time.Time // kernel monotonic ns to wall clock
	cluster   string

	mu        sync.Mutex
	settling  []done // completed, oldest first from head, waiting Settle to be named
	head      int
	socks     map[uint64]*sock
	closes    map[uint64]uint64 // recent closes of sockets with no state (yet): sock -> kernel ns
	closeLog  []uint64          // closes, oldest first, to bound it
	lastMono  uint64            // latest record's kernel time
	swept     time.Time         // last sweep for idle sockets
	series    map[seriesKey]*histogram
	routes    map[string]struct{}
	unpaired  uint64 // responses with no request in flight
	malformed uint64 // records that were not HTTP after all
	dropped   uint64 // requests not followed because a bound was reached
}

// New makes a table; spans may be nil. wall converts kernel time.
func New(names Namer, routes *route.Templater, spans Spans, wall func(uint64) time.Time, cluster string) *Table {
	return &Table{names: names, templater: routes, now: time.Now, spans: spans, wall: wall, cluster: cluster,
		socks: map[uint64]*sock{}, closes: map[uint64]uint64{}, series: map[seriesKey]*histogram{}, routes: map[string]struct{}{}}
}

// Apply pairs one record. A server receives requests and sends responses; a
// client sends requests and receives responses.
func (t *Table) Apply(e *event.HTTP) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastMono = max(t.lastMono, e.Mono)
	if !e.Response {
		if !e.Valid {
			t.malformed++
			return
		}
		s := t.sock(e, e.Received)
		if s == nil || len(s.queue) >= maxPending {
			t.dropped++
			return
		}
		s.last = e.Mono
		tp, _ := parseTraceparent(e.Traceparent)
		s.queue = append(s.queue, pending{at: e.Mono, method: e.Method, route: t.route(e.Path), parent: tp})
		return
	}
	if !e.Valid {
		t.malformed++
		return
	}
	s := t.socks[e.Sock]
	if s == nil || len(s.queue) == 0 || s.server == e.Received {
		t.unpaired++
		return
	}
	if e.Status < 200 { // 100 Continue and friends: the final answer follows
		return
	}
	p := s.queue[0]
	s.queue = s.queue[:copy(s.queue, s.queue[1:])] // keeps the array for the next request
	s.last = e.Mono
	t.complete(s, p, status(e.Status), e.Mono)
}

// Closed notes that a socket closed at kernel time mono; requests still in
// flight once the grace period is over count as unanswered, their duration
// ending at the close.
func (t *Table) Closed(sockAddr, mono uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	// A close from before the state's first record is an older socket's
	// at the same address, arriving late through the other ring buffer.
	s := t.socks[sockAddr]
	if s != nil && s.closedAt.IsZero() && mono >= s.start {
		s.closedAt, s.closedMono = t.now(), mono
		return
	}
	// Its requests may not have arrived yet (another ring buffer): remember.
	if len(t.closeLog) >= maxSockets {
		delete(t.closes, t.closeLog[0])
		t.closeLog = t.closeLog[1:]
	}
	t.closes[sockAddr] = mono
	t.closeLog = append(t.closeLog, sockAddr)
}

// Tick finalizes sockets closed longer than Grace ago and names the
// requests that have settled. The agent calls it every 100ms.
func (t *Table) Tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	defer func() {
		for t.head < len(t.settling) && now.Sub(t.settling[t.head].at) >= Settle {
			t.observe(t.settling[t.head])
			t.settling[t.head] = done{} // let go of its strings
			t.head++
		}
		// Reuse the array instead of sliding along it.
		if t.head == len(t.settling) {
			t.settling, t.head = t.settling[:0], 0
		} else if t.head > len(t.settling)/2 {
			n := copy(t.settling, t.settling[t.head:])
			clear(t.settling[n:])
			t.settling, t.head = t.settling[:n], 0
		}
	}()
	idleSweep := now.Sub(t.swept) >= IdleAfter/4
	if idleSweep {
		t.swept = now
	}
	for addr, s := range t.socks {
		if idleSweep && t.lastMono-s.last > uint64(IdleAfter) {
			if len(s.queue) == 0 {
				delete(t.socks, addr) // its close went unseen; nothing in flight to lose
				continue
			}
			if t.lastMono-s.last > uint64(5*IdleAfter) { // no answer in five minutes
				for _, p := range s.queue {
					t.complete(s, p, Noanswer, s.last)
				}
				delete(t.socks, addr)
				continue
			}
		}
		if s.closedAt.IsZero() || now.Sub(s.closedAt) < Grace {
			continue
		}
		for _, p := range s.queue {
			t.complete(s, p, Noanswer, s.closedMono)
		}
		delete(t.socks, addr)
	}
}

// status is the label value of a status code, without allocating for the
// usual ones.
func status(code int) string {
	if code >= 100 && code < 600 {
		return statusNames[code-100]
	}
	return strconv.Itoa(code)
}

var statusNames = func() (n [500]string) {
	for i := range n {
		n[i] = strconv.Itoa(i + 100)
	}
	return
}()

// sock returns the state of e's socket, creating it; nil when full.
func (t *Table) sock(e *event.HTTP, server bool) *sock {
	s := t.socks[e.Sock]
	// Other ends at the same address: a new socket, so the old one closed
	// (its close may still be on its way). What it left in flight went
	// unanswered.
	if s != nil && (!s.closedAt.IsZero() || s.who.Local != e.Local || s.who.Remote != e.Remote) {
		end := s.closedMono
		if end == 0 {
			end = e.Mono
		}
		for _, p := range s.queue {
			t.complete(s, p, Noanswer, end)
		}
		s = nil
	}
	if s == nil {
		if len(t.socks) >= maxSockets {
			return nil
		}
		kind := event.Connect
		if server {
			kind = event.Accept
		}
		s = &sock{server: server, start: e.Mono, who: event.TCP{Kind: kind, Sock: e.Sock, Netns: e.Netns,
			PID: e.PID, Comm: e.Comm, Local: e.Local, Remote: e.Remote}}
		if mono, ok := t.closes[e.Sock]; ok && mono >= e.Mono { // closed before we heard of it
			s.closedAt, s.closedMono = t.now(), mono
		}
		t.socks[e.Sock] = s
	}
	return s
}

func (t *Table) route(path string) string {
	r := t.templater.Template(path)
	if _, ok := t.routes[r]; !ok {
		if len(t.routes) >= maxRoutes {
			return flow.Other
		}
		t.routes[r] = struct{}{}
	}
	return r
}

// complete queues a finished request to be named once its connection's
// records have arrived.
func (t *Table) complete(s *sock, p pending, status string, end uint64) {
	if len(t.settling)-t.head >= maxSettling {
		t.observe(t.settling[t.head])
		t.head++
	}
	d := done{who: s.who, server: s.server, p: p, status: status, end: end}
	// Name it now if the connection's records are in (by the time it has
	// settled, the socket's address may belong to another connection);
	// else let them arrive first.
	if d.key, d.named = t.names.Lookup(&d.who); d.named {
		t.observe(d)
		return
	}
	d.at = t.now()
	t.settling = append(t.settling, d)
}

func (t *Table) observe(d done) {
	key := d.key
	if !d.named {
		key = t.names.KeyFor(&d.who)
	}
	p, status, end := d.p, d.status, d.end
	k := seriesKey{Key: key, server: d.server, method: p.method, status: status, path: p.route}
	h := t.series[k]
	if h == nil {
		if len(t.series) >= maxSeries {
			t.dropped++
			return
		}
		h = &histogram{exemplars: make([]*prometheus.Exemplar, len(buckets)+1)}
		t.series[k] = h
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
	if trace == [16]byte{} {
		return // nothing to point an exemplar at
	}
	h.exemplars[i] = &prometheus.Exemplar{Value: secs, Timestamp: t.wall(end),
		Labels: prometheus.Labels{"trace_id": hex.EncodeToString(trace[:])}}
	if t.spans != nil {
		t.spans.Export(t.span(d, key, trace))
	}
}

// span is the request as OTel semantic conventions describe it.
func (t *Table) span(d done, key flow.Key, trace [16]byte) tempo.Span {
	p, status := d.p, d.status
	sp := tempo.Span{TraceID: trace, ParentID: p.parent.span, Name: p.method + " " + p.route, Server: d.server,
		Start: t.wall(p.at), End: t.wall(d.end)}
	rand.Read(sp.SpanID[:])
	server, client := d.who.Local, d.who.Remote
	sp.Resource = tempo.Resource{Service: key.SourceWorkload, Namespace: key.SourceNamespace, Cluster: t.cluster}
	if d.server {
		sp.Resource = tempo.Resource{Service: key.DestinationWorkload, Namespace: key.DestinationNamespace, Cluster: t.cluster}
	} else {
		server, client = client, server
	}
	code, _ := strconv.Atoi(status)
	sp.Attrs = map[string]any{
		"http.request.method": p.method, "url.path": p.route, "http.route": p.route,
		"server.address": server.Addr().String(), "server.port": int64(server.Port()),
		"client.address": client.Addr().String(),
	}
	if code > 0 {
		sp.Attrs["http.response.status_code"] = int64(code)
	} else {
		sp.Attrs["error.type"] = "no_response"
	}
	sp.Error = code == 0 || code >= 500 || (!d.server && code >= 400)
	return sp
}

var (
	labels     = append(append([]string{}, flow.KeyLabels...), "method", "status_code", "route")
	serverDesc = prometheus.NewDesc("strata_http_server_request_duration_seconds",
		"HTTP requests this host served: time from the request's first bytes read to the response's first bytes written.", labels, nil)
	clientDesc = prometheus.NewDesc("strata_http_client_request_duration_seconds",
		"HTTP requests this host made: time from the request's first bytes written to the response's first bytes read.", labels, nil)
	healthDesc = prometheus.NewDesc("strata_agent_http_records_total",
		"HTTP records that did not become a request: unpaired responses, malformed heads, dropped at a bound.", []string{"outcome"}, nil)
)

func (t *Table) Describe(chan<- *prometheus.Desc) {}

func (t *Table) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, h := range t.series {
		d := clientDesc
		if k.server {
			d = serverDesc
		}
		m := h.Metric(d, buckets, append(k.Key.Values(), k.method, k.status, k.path)...)
		var ex []prometheus.Exemplar
		for _, e := range h.exemplars {
			if e != nil {
				ex = append(ex, *e)
			}
		}
		if len(ex) > 0 {
			if withEx, err := prometheus.NewMetricWithExemplars(m, ex...); err == nil {
				m = withEx
			}
		}
		ch <- m
	}
	for outcome, n := range map[string]uint64{"unpaired": t.unpaired, "malformed": t.malformed, "dropped": t.dropped} {
		ch <- prometheus.MustNewConstMetric(healthDesc, prometheus.CounterValue, float64(n), outcome)
	}
}
