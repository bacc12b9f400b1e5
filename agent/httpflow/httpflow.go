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
	"github.com/stratanet/strata/exporters/loki"
	"github.com/stratanet/strata/exporters/tempo"
	"github.com/stratanet/strata/identity"
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

// IdleAfter forgets a socket with nothing in flight that has been quiet
// this long (its close may have been lost); it comes back with its next
// request. A request unanswered for five times as long ends as unanswered.
const IdleAfter = time.Minute

// TalliedIdle forgets a tallied socket that sent nothing for this long.
const TalliedIdle = time.Hour

// buckets are the kernel's too, for the exchanges it tallies.
var buckets = event.HTTPBuckets

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
	last   uint64 // kernel ns of its latest record
	// who the socket is, for naming the pair when a request completes
	who   event.TCP
	queue []pending
}

// done is a completed request, named, to be counted.
type done struct {
	key    flow.Key
	who    event.TCP
	server bool
	p      pending
	status string
	end    uint64
	slot   *slot // the tally slot it opened, nil if none
}

// tallied is a socket whose exchanges the kernel counts in slots
// (event.HTTPTally); each slot's first exchange came as a record.
type tallied struct {
	cookie uint64
	netns  uint32
	seen   time.Time // its latest record
	closed time.Time // its TCP close; zero while open
	slots  [event.TallySlots]*slot
}

// slot is where the kernel's counts of one slot go: the series its first
// exchange was counted in, once that is named.
type slot struct {
	status int
	named  bool
	lost   *uint64 // where its counts go when they cannot be kept (t.dropped, t.malformed)
	key    seriesKey
	held   hist.Histogram // counts that came before the name
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

// Namer names a socket's pair (e.Kind is Accept for the server end): the
// connection's own when known, else by resolving its addresses afresh.
type Namer interface {
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
	// Events receives failed requests (5xx, or no answer) as http_error
	// events; nil: counted only. Set before the first record.
	Events flow.Events
	// Gone and GoneGrace drop the series of deleted workloads, as the flow
	// table does. Set before the first record.
	Gone      flow.GoneFunc
	GoneGrace time.Duration

	mu        sync.Mutex
	socks     map[uint64]*sock
	tallies   map[uint64]*tallied // by socket
	talliedIn map[uint32]int      // tallied sockets per network namespace
	lastMono  uint64              // latest record's kernel time
	swept     time.Time           // last sweep for idle sockets
	pruned    time.Time           // last look for series of deleted workloads
	series    map[seriesKey]*histogram
	routes    map[string]string // each route kept once, as its own key
	unpaired  uint64            // responses with no request in flight
	malformed uint64            // records that were not HTTP after all
	dropped   uint64            // requests not followed because a bound was reached
	who       event.TCP         // scratch for the namer (complete)
}

// New makes a table; spans may be nil. wall converts kernel time.
func New(names Namer, routes *route.Templater, spans Spans, wall func(uint64) time.Time, cluster string) *Table {
	return &Table{names: names, templater: routes, now: time.Now, spans: spans, wall: wall, cluster: cluster,
		socks: map[uint64]*sock{}, tallies: map[uint64]*tallied{}, talliedIn: map[uint32]int{}, series: map[seriesKey]*histogram{}, routes: map[string]string{}}
}

// Apply pairs one record. A server receives requests and sends responses; a
// client sends requests and receives responses.
func (t *Table) Apply(e *event.HTTP) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lastMono = max(t.lastMono, e.Mono)
	if e.Ended != 0 { // paired in the kernel
		sl := t.slot(e)
		if !e.Valid {
			t.malformed++
			if sl != nil {
				sl.lost = &t.malformed
			}
			return
		}
		p := t.pending(e)
		code := Noanswer
		if e.Status != 0 {
			code = status(e.Status)
		}
		t.complete(who(e, e.Received), e.Received, p, code, e.Ended, sl)
		return
	}
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
		s.queue = append(s.queue, t.pending(e))
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
	t.complete(s.who, s.server, p, status(e.Status), e.Mono, nil)
}

// slot is the tally slot e opens, nil if it opens none or the table is full.
func (t *Table) slot(e *event.HTTP) *slot {
	if e.Slot == 0 {
		return nil
	}
	ts := t.tallies[e.Sock]
	if ts == nil || ts.cookie != e.Cookie { // a new socket at a freed one's address
		if ts == nil && len(t.tallies) >= maxSockets {
			t.dropped++ // its later counts will be dropped too, and counted so
			return nil
		}
		t.forget(e.Sock)
		ts = &tallied{cookie: e.Cookie, netns: e.Netns}
		t.tallies[e.Sock] = ts
		t.talliedIn[e.Netns]++
	}
	ts.seen = t.now()
	sl := &slot{status: e.Status}
	ts.slots[e.Slot-1] = sl
	return sl
}

// Tally counts what the kernel counted on a socket since its last tally, in
// the series each slot's first exchange went to.
func (t *Table) Tally(c *event.HTTPTally) {
	t.mu.Lock()
	defer t.mu.Unlock()
	ts := t.tallies[c.Sock]
	if ts != nil && ts.cookie != c.Cookie {
		ts = nil
	}
	for i := range c.Slots {
		k := &c.Slots[i]
		n := k.Total()
		if n == 0 && k.Sum == 0 {
			continue
		}
		var sl *slot
		if ts != nil {
			sl = ts.slots[i]
		}
		secs := float64(k.Sum) / 1e9
		switch {
		case sl == nil || sl.status != k.Status:
			t.dropped += n // its first exchange never came (lost, or a bound)
		case sl.lost != nil:
			*sl.lost += n
		case !sl.named:
			sl.held.AddCounts(k.Counts[:], secs)
		default:
			if h := t.histogram(sl.key); h != nil {
				h.AddCounts(k.Counts[:], secs)
			} else {
				t.dropped += n
			}
		}
	}
	if ts == nil {
		return
	}
	ts.seen = t.now()
	if c.Final {
		t.forget(c.Sock)
	}
}

// forget drops a tallied socket's state.
func (t *Table) forget(sock uint64) {
	ts := t.tallies[sock]
	if ts == nil {
		return
	}
	delete(t.tallies, sock)
	if t.talliedIn[ts.netns]--; t.talliedIn[ts.netns] <= 0 {
		delete(t.talliedIn, ts.netns)
	}
}

// TalliedIn reports whether network namespace netns holds sockets whose
// exchanges the kernel counts: only those namespaces need reading for
// counts (the sweep skips the rest, whose walks can be long: TIME_WAIT).
// Counts of sockets the table has not heard of yet wait in the kernel.
func (t *Table) TalliedIn(netns uint32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.talliedIn[netns] > 0
}

// Closed ends a socket at kernel time mono: what it left in flight went
// unanswered. Records come in the kernel's order, so its requests and
// responses are all in.
func (t *Table) Closed(sockAddr, mono uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s := t.socks[sockAddr]; s != nil {
		t.end(sockAddr, s, mono)
	}
	// Its final tally follows (the TCP probe runs first on the close).
	if ts := t.tallies[sockAddr]; ts != nil && ts.closed.IsZero() {
		ts.closed = t.now()
	}
}

func (t *Table) end(addr uint64, s *sock, at uint64) {
	for _, p := range s.queue {
		t.complete(s.who, s.server, p, Noanswer, at, nil)
	}
	delete(t.socks, addr)
}

// Tick forgets sockets whose close went unseen. The agent calls it often;
// it looks only every IdleAfter/4.
func (t *Table) Tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
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
	// Other ends at the same address: a new socket whose predecessor's close
	// was not seen. What it left in flight went unanswered.
	if s != nil && (s.who.Local != e.Local || s.who.Remote != e.Remote) {
		t.end(e.Sock, s, e.Mono)
		s = nil
	}
	if s == nil {
		if len(t.socks) >= maxSockets {
			return nil
		}
		s = &sock{server: server, who: who(e, server)}
		t.socks[e.Sock] = s
	}
	return s
}

// pending is the request e as it waits for its answer.
func (t *Table) pending(e *event.HTTP) pending {
	p := pending{at: e.Mono, method: e.Method, route: t.route(e.Path)}
	if e.Traceparent != "" {
		p.parent, _ = parseTraceparent(e.Traceparent)
	}
	return p
}

// who is the connection a request came on, as the flow table names it: an
// Accept at the server's end, a Connect at the client's.
func who(e *event.HTTP, server bool) event.TCP {
	kind := event.Connect
	if server {
		kind = event.Accept
	}
	return event.TCP{Kind: kind, Sock: e.Sock, Netns: e.Netns, PID: e.PID, Comm: e.Comm, Local: e.Local, Remote: e.Remote}
}

func (t *Table) route(path string) string {
	var buf [128]byte
	b := t.templater.Append(buf[:0], path)
	if r, ok := t.routes[string(b)]; ok { // no copy: most requests take a known route
		return r
	}
	if len(t.routes) >= maxRoutes {
		return flow.Other
	}
	r := string(b)
	t.routes[r] = r
	return r
}

// complete names a finished request after its connection: the table's
// own pair when it follows the socket, else what its ends resolve to now.
func (t *Table) complete(who event.TCP, server bool, p pending, status string, end uint64, sl *slot) {
	d := done{who: who, server: server, p: p, status: status, end: end, slot: sl}
	// The namer gets the table's own copy of who: a pointer to d would move
	// d to the heap, once per request.
	t.who = who
	l, ok := t.names.(laterNamer)
	if !ok {
		d.key = t.names.KeyFor(&t.who)
		t.observe(d)
		return
	}
	if key, ok := l.Named(&t.who); ok { // most requests
		d.key = key
		t.observe(d)
		return
	}
	t.later(l, d)
}

// later counts a request on a connection whose ends are not named yet (a
// pod not reported yet) once they are, like the connection.
func (t *Table) later(l laterNamer, d done) {
	key, now := l.Later(&d.who, func(k flow.Key) {
		t.mu.Lock()
		defer t.mu.Unlock()
		d.key = k
		t.observe(d)
	})
	if now {
		d.key = key
		t.observe(d)
	}
}

// laterNamer is a Namer that can wait for names (the flow table).
type laterNamer interface {
	Named(e *event.TCP) (flow.Key, bool)
	Later(e *event.TCP, then func(flow.Key)) (flow.Key, bool)
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
		if len(t.series) >= maxSeries {
			return nil
		}
		h = &histogram{exemplars: make([]*prometheus.Exemplar, len(buckets)+1)}
		t.series[k] = h
	}
	return h
}

// failed sends a failed request as an event.
func (t *Table) failed(d done, secs float64, trace [16]byte) {
	src, dst := d.who.Local, d.who.Remote
	if d.server {
		src, dst = dst, src
	}
	f := make([]string, 0, 30)
	for i, v := range d.key.Values() {
		if v != "" {
			f = append(f, flow.KeyLabels[i], v)
		}
	}
	f = append(f, "source_addr", src.String(), "destination_addr", dst.String(),
		"method", d.p.method, "route", d.p.route, "status_code", d.status,
		"duration", strconv.FormatFloat(secs, 'f', 6, 64))
	if d.status == Noanswer {
		f = append(f, "error", "no response before the connection closed")
	}
	if trace != [16]byte{} {
		f = append(f, "trace_id", hex.EncodeToString(trace[:]))
	}
	t.Events.Push(loki.Event{Time: t.wall(d.end), Kind: loki.HTTPError, Namespace: d.key.SourceNamespace, Fields: f})
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
	graphLabels      = []string{"client", "server"}
	graphRequests    = prometheus.NewDesc("traces_service_graph_request_total", "Requests between two services (counted where the server is observed, or at the client when the server is outside).", graphLabels, nil)
	graphFailed      = prometheus.NewDesc("traces_service_graph_request_failed_total", "Requests between two services that failed: 5xx, or no answer.", graphLabels, nil)
	graphServerTimes = prometheus.NewDesc("traces_service_graph_request_server_seconds", "Request durations as the server saw them.", graphLabels, nil)
	graphClientTimes = prometheus.NewDesc("traces_service_graph_request_client_seconds", "Request durations as the client saw them.", graphLabels, nil)
	healthDesc       = prometheus.NewDesc("strata_agent_http_records_total",
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
	t.collectGraph(ch)
	for outcome, n := range map[string]uint64{"unpaired": t.unpaired, "malformed": t.malformed, "dropped": t.dropped} {
		ch <- prometheus.MustNewConstMetric(healthDesc, prometheus.CounterValue, float64(n), outcome)
	}
}

// edge is one client -> server pair of the service graph.
type edge struct{ client, server string }

type edgeStats struct {
	requests, failed uint64
	server, client   hist.Histogram
}

// collectGraph folds the request series into Grafana's service-graph
// metrics. A request is counted once: where its server is observed, or at
// its client when the server is outside (world), where no agent sees it.
func (t *Table) collectGraph(ch chan<- prometheus.Metric) {
	edges := map[edge]*edgeStats{}
	for k, h := range t.series {
		e := edge{serviceName(k.SourceNamespace, k.SourceWorkload), serviceName(k.DestinationNamespace, k.DestinationWorkload)}
		st := edges[e]
		if st == nil {
			st = &edgeStats{}
			edges[e] = st
		}
		if k.server {
			st.server.Add(&h.Histogram)
		} else {
			st.client.Add(&h.Histogram)
		}
		if k.server || k.DestinationWorkload == identity.World {
			st.requests += h.Count()
			if k.status == Noanswer || k.status[0] == '5' {
				st.failed += h.Count()
			}
		}
	}
	for e, st := range edges {
		ch <- prometheus.MustNewConstMetric(graphRequests, prometheus.CounterValue, float64(st.requests), e.client, e.server)
		ch <- prometheus.MustNewConstMetric(graphFailed, prometheus.CounterValue, float64(st.failed), e.client, e.server)
		if st.server.Count() > 0 {
			ch <- st.server.Metric(graphServerTimes, buckets, e.client, e.server)
		}
		if st.client.Count() > 0 {
			ch <- st.client.Metric(graphClientTimes, buckets, e.client, e.server)
		}
	}
}

// serviceName is how the service graph names a workload: namespace/name in
// Kubernetes, the name alone outside.
func serviceName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}
