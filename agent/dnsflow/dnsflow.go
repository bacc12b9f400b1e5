// Package dnsflow pairs the DNS queries clients send with the responses
// they receive, counts them per source, name, type and response code, times
// them, reports failures as dns_error events, and teaches every answer to
// the identity cache of the client's network namespace.
package dnsflow

import (
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratanet/strata/agent/emit"
	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/agent/hist"
	dnsid "github.com/stratanet/strata/identity/dns"
	"github.com/stratanet/strata/probes/event"
)

// Timeout is the rcode of a query no response answered in time.
const Timeout = "timeout"

// Options bound what the table holds whatever the traffic.
type Options struct {
	// Timeout: a query unanswered this long counts as rcode="timeout"; a
	// response that comes later is too late to count.
	Timeout     time.Duration
	QnameBudget int // distinct qname values; more fold into ~other
	MaxSeries   int // label sets per metric; beyond, sources and names fold into ~other
	MaxPending  int // queries waiting for their response; beyond, new ones are not followed
	// ExpansionWait: how long an NXDOMAIN answer waits for its client's
	// next question, which may show it was a search-path expansion
	// (search.go), before the delivery slack is added; 0: none wait, and
	// only expansions of names asked before fold.
	ExpansionWait time.Duration
	// QnameIdle: a name not counted for this long gives its budget slot
	// back and its series go; 0: names keep their slots.
	QnameIdle time.Duration
}

func DefaultOptions() Options {
	return Options{Timeout: 5 * time.Second, QnameBudget: 1000, MaxSeries: 20000, MaxPending: 1 << 14,
		ExpansionWait: time.Second, QnameIdle: 15 * time.Minute}
}

// Namer names a client socket's pair (the flow table, whose budgets the
// source labels share with every other series).
type Namer interface {
	// Name names e's pair if it can now (ok), else fills w to wait with: a
	// lookup from a pod not reported yet waits for its name. With w nil it
	// names the pair now, by guess.
	Name(e *event.TCP, w *flow.Wait) (flow.Key, bool)
	// Settle is a waiting pair's key once its names are in or its wait is
	// over (ok).
	Settle(w *flow.Wait) (flow.Key, bool)
}

// Learner takes the answers (identity/dns.Cache).
type Learner interface {
	Learn(netns uint32, a dnsid.Answer)
}

// deliverySlack is how long after its timeout a query waits before the
// tick ends it: a response made in time may still be in the ring buffer.
const deliverySlack = time.Second

// client is where a query came from and went: a socket and an id.
type client struct {
	netns  uint32
	local  netip.AddrPort
	id     uint16
	tcp    bool
	remote netip.AddrPort
}

type query struct {
	at    uint64 // kernel ns
	name  string
	qtype string
	pid   uint32
	comm  string
	key   flow.Key   // the client, named as it asked, or
	wait  *flow.Wait // its names to come: what was known as it asked
}

type countKey struct {
	namespace, workload, qname, qtype, rcode string
}

type durationKey struct {
	namespace, workload, qtype, rcode string
}

// Table is the DNS pairing and aggregation. Apply and Tick come from the
// agent's one event loop; Collect from scrapes, which hold the lock only
// to copy the values.
type Table struct {
	names Namer
	cache Learner
	opts  Options
	mono  func() uint64               // kernel monotonic now, ns
	wall  func(mono uint64) time.Time // kernel ns to wall clock
	// Events receives failed lookups as dns_error events; nil: counted
	// only. Set before the first record.
	Events emit.Events

	mu        sync.Mutex
	pending   map[client]query
	qnames    map[string]uint64 // name -> when last counted (kernel ns)
	asked     map[asker][]asked
	held      map[asker][]held
	nheld     int
	suffixes  map[string]uint64 // learned search suffixes -> when last used
	overflow  uint64            // qnames folded into ~other
	counts    map[countKey]uint64
	durations map[durationKey]*hist.Histogram
	unpaired  uint64              // responses with no query waiting
	late      uint64              // responses after their query timed out
	malformed uint64              // records that did not parse
	dropped   uint64              // queries not followed: too many pending
	unnamed   flow.Late[answered] // completed lookups waiting for their client's name
	wait      flow.Wait           // scratch for the namer (Apply)

	scrape sync.Mutex // held by a Collect, which owns snap
	snap   snapshot   // a scrape's copy of the values, its buffers reused
}

// answered is a completed lookup, to be counted once its client is named.
type answered struct {
	k      client
	q      query
	rcode  string
	end    uint64
	suffix string
}

// New makes a table. cache may be nil; mono is the kernel's monotonic
// clock, wall converts it.
func New(names Namer, cache Learner, opts Options, mono func() uint64, wall func(uint64) time.Time) *Table {
	return &Table{names: names, cache: cache, opts: opts, mono: mono, wall: wall,
		pending: map[client]query{}, qnames: map[string]uint64{},
		asked: map[asker][]asked{}, held: map[asker][]held{}, suffixes: map[string]uint64{},
		counts: map[countKey]uint64{}, durations: map[durationKey]*hist.Histogram{}}
}

// Apply takes one record: a query waits for its response; a response is
// learned from, and completes its query.
func (t *Table) Apply(e *event.DNS) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if !e.Response {
		q, ok := dnsid.ParseQuery(e.Msg)
		if !ok {
			t.malformed++
			return
		}
		t.noteAsked(asker{e.Netns, e.PID}, q.Name, e.Mono)
		k := client{e.Netns, e.Local, q.ID, e.TCP, e.Remote}
		if _, ok := t.pending[k]; ok {
			return // sent again with the same id: the wait counts from the first
		}
		if len(t.pending) >= t.opts.MaxPending {
			t.dropped++
			return
		}
		p := query{at: e.Mono, name: q.Name, qtype: q.Type, pid: e.PID, comm: e.Comm}
		// Named while the client surely lives: a pod may be gone by the
		// time its query times out. Ends not known yet wait from here, with
		// the ends already named (the pod) kept.
		if key, ok := t.names.Name(asking(k, p), &t.wait); ok {
			p.key = key
		} else {
			p.wait = new(flow.Wait)
			*p.wait = t.wait
		}
		t.pending[k] = p
		return
	}
	a, ok := dnsid.Parse(e.Msg)
	if !ok {
		t.malformed++
		return
	}
	if t.cache != nil && len(a.Addrs) > 0 {
		t.cache.Learn(e.Netns, a)
	}
	k := client{e.Netns, e.Local, a.ID, e.TCP, e.Remote}
	q, ok := t.pending[k]
	if !ok || q.name != a.Name || q.qtype != a.Type {
		t.unpaired++
		return
	}
	delete(t.pending, k)
	if e.Mono-q.at > uint64(t.opts.Timeout) {
		t.late++
		t.complete(k, q, Timeout, q.at+uint64(t.opts.Timeout), "")
		return
	}
	if a.Rcode == "NXDOMAIN" {
		t.nxdomain(k, q, e.Mono)
		return
	}
	t.complete(k, q, a.Rcode, e.Mono, "")
}

// Tick counts the lookups whose client was named, and ends the queries
// unanswered past their timeout. The agent calls it about once a second.
func (t *Table) Tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.named()
	now := t.mono()
	limit := uint64(t.opts.Timeout + deliverySlack)
	for k, q := range t.pending {
		if now > q.at && now-q.at > limit {
			delete(t.pending, k)
			t.complete(k, q, Timeout, q.at+uint64(t.opts.Timeout), "")
		}
	}
	t.tickSearch(now)
	t.releaseIdle(now)
}

// releaseIdle gives back the budget slots of names not counted for
// QnameIdle, with their series: a client that looked a thousand names up
// once must not keep the budget full for good.
func (t *Table) releaseIdle(now uint64) {
	if t.opts.QnameIdle <= 0 {
		return
	}
	idle := map[string]bool{}
	for name, last := range t.qnames {
		if now > last && now-last > uint64(t.opts.QnameIdle) {
			idle[name] = true
			delete(t.qnames, name)
		}
	}
	if len(idle) == 0 {
		return
	}
	for k := range t.counts {
		if idle[k.qname] {
			delete(t.counts, k)
		}
	}
}

// complete counts one answered (or timed-out) query, once its client is
// named; a search-path expansion (suffix set) under "*.suffix", with no
// event.
func (t *Table) complete(k client, q query, rcode string, end uint64, suffix string) {
	switch {
	case q.wait == nil:
		t.count(q.key, k, q, rcode, end, suffix)
	case t.unnamed.Full():
		key, _ := t.names.Name(asking(k, q), nil) // named now, by guess
		t.count(key, k, q, rcode, end, suffix)
	default:
		t.unnamed.Add(q.wait, answered{k, q, rcode, end, suffix})
	}
}

// asking is the lookup's client as a connection the namer can name.
func asking(k client, q query) *event.TCP {
	return &event.TCP{Kind: event.Connect, Netns: k.netns, PID: q.pid, Comm: q.comm, Local: k.local, Remote: k.remote}
}

// named counts the lookups whose client was named (or whose wait is over).
func (t *Table) named() {
	if t.unnamed.Len() == 0 {
		return
	}
	t.unnamed.Settle(t.names.Settle, func(a answered, key flow.Key) {
		t.count(key, a.k, a.q, a.rcode, a.end, a.suffix)
	})
}

func (t *Table) count(key flow.Key, k client, q query, rcode string, end uint64, suffix string) {
	ns, wl := key.SourceNamespace, key.SourceWorkload
	qtype := foldType(q.qtype)
	name := q.name
	if suffix != "" {
		name = "*." + suffix
	}
	qname := t.foldName(name, end)
	secs := 0.0
	if end > q.at {
		secs = float64(end-q.at) / 1e9
	}

	ck := countKey{ns, wl, qname, qtype, rcode}
	if _, ok := t.counts[ck]; !ok && len(t.counts) >= t.opts.MaxSeries {
		// Full: the name, then the source, give way.
		ck.qname = flow.Other
		if _, ok := t.counts[ck]; !ok {
			ck.namespace, ck.workload = flow.Other, flow.Other
		}
	}
	t.counts[ck]++
	dk := durationKey{ns, wl, qtype, rcode}
	if _, ok := t.durations[dk]; !ok && len(t.durations) >= t.opts.MaxSeries {
		dk.namespace, dk.workload = flow.Other, flow.Other
	}
	h := t.durations[dk]
	if h == nil {
		h = &hist.Histogram{}
		t.durations[dk] = h
	}
	h.Observe(buckets, secs)

	if rcode != "NOERROR" && t.Events != nil && suffix == "" {
		t.failed(key, k, q, rcode, secs, end)
	}
}

// failed sends a failed lookup as an event: who asked what of whom, and
// the answer (or none).
func (t *Table) failed(key flow.Key, k client, q query, rcode string, secs float64, end uint64) {
	f := make([]string, 0, 20)
	if key.SourceNamespace != "" {
		f = append(f, "source_namespace", key.SourceNamespace)
	}
	f = append(f, "source_workload", key.SourceWorkload,
		"source_addr", k.local.String(), "destination_addr", k.remote.String(),
		"qname", q.name, "qtype", q.qtype, "rcode", rcode,
		"duration", strconv.FormatFloat(secs, 'f', 6, 64))
	if k.tcp {
		f = append(f, "transport", "tcp")
	}
	if rcode == Timeout {
		f = append(f, "error", "no response within "+t.opts.Timeout.String())
	}
	t.Events.Push(emit.Event{Time: t.wall(end), Kind: emit.DNSError, Namespace: key.SourceNamespace, Fields: f})
}

// foldName passes a name through the qname budget.
func (t *Table) foldName(name string, at uint64) string {
	if last, ok := t.qnames[name]; ok {
		t.qnames[name] = max(last, at)
		return name
	}
	if len(t.qnames) >= t.opts.QnameBudget {
		t.overflow++
		return flow.Other
	}
	t.qnames[name] = at
	return name
}

// knownTypes are the question types with a label value of their own: a
// client asking for arbitrary type numbers must not mint series.
var knownTypes = map[string]bool{"A": true, "AAAA": true, "CNAME": true, "MX": true, "TXT": true, "SRV": true,
	"PTR": true, "NS": true, "SOA": true, "HTTPS": true, "SVCB": true, "CAA": true, "ANY": true, "DS": true,
	"DNSKEY": true, "NAPTR": true}

func foldType(t string) string {
	if knownTypes[t] {
		return t
	}
	return flow.Other
}

// Pending is the number of queries waiting for their response.
func (t *Table) Pending() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.pending)
}

// Buckets in seconds: a local cache (sub-millisecond) to a resolver's
// retries (seconds).
var buckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10}

var (
	requestsDesc = prometheus.NewDesc("strata_dns_requests_total",
		"DNS queries clients sent, by the response's code (timeout: none came in time).",
		[]string{"source_namespace", "source_workload", "qname", "qtype", "rcode"}, nil)
	durationDesc = prometheus.NewDesc("strata_dns_request_duration_seconds",
		"Time from a DNS query sent to its response received (timeouts: the timeout).",
		[]string{"source_namespace", "source_workload", "qtype", "rcode"}, nil)
	overflowDesc = prometheus.NewDesc("strata_agent_overflow_total", "Label values folded into ~other because a budget was full.", []string{"label"}, nil)
	seriesDesc   = prometheus.NewDesc("strata_agent_series", "Series the agent exposes, per metric.", []string{"metric"}, nil)
	pendingDesc  = prometheus.NewDesc("strata_agent_dns_pending_queries", "DNS queries waiting for their response.", nil, nil)
	recordsDesc  = prometheus.NewDesc("strata_agent_dns_records_total",
		"DNS records that did not complete a query: unpaired or late responses, malformed messages, queries dropped at the bound.", []string{"outcome"}, nil)
)

func (t *Table) Describe(chan<- *prometheus.Desc) {}

// Collect holds the table's lock only while it copies the values into
// plain structs (no allocation once its buffers have grown): the event
// loop never waits while a scrape builds and sends its metrics.
func (t *Table) Collect(ch chan<- prometheus.Metric) {
	t.scrape.Lock() // one scrape at a time owns the buffers
	defer t.scrape.Unlock()
	t.mu.Lock()
	t.snapshot(&t.snap)
	t.mu.Unlock()
	t.snap.emit(ch)
}

type countSample struct {
	countKey
	n uint64
}

type durationSample struct {
	durationKey
	h hist.Histogram
}

// snapshot is what a scrape exposes, copied under the table's lock.
type snapshot struct {
	counts                                       []countSample
	durations                                    []durationSample
	overflow, unpaired, late, malformed, dropped uint64
	pending                                      int
}

// grow makes b n long, reusing its elements; it grows (bounded by
// MaxSeries) with room to spare.
func grow[T any](b []T, n int) []T {
	if cap(b) < n {
		b = append(b[:cap(b)], make([]T, n+n/4-cap(b))...)
	}
	return b[:n]
}

// snapshot copies what Collect exposes into s. Called with t.mu held.
func (t *Table) snapshot(s *snapshot) {
	s.counts = grow(s.counts, len(t.counts))
	i := 0
	for k, n := range t.counts {
		s.counts[i] = countSample{k, n}
		i++
	}
	s.durations = grow(s.durations, len(t.durations))
	i = 0
	for k, h := range t.durations {
		d := &s.durations[i]
		d.durationKey = k
		h.CopyTo(&d.h)
		i++
	}
	s.overflow, s.pending = t.overflow, len(t.pending)
	s.unpaired, s.late, s.malformed, s.dropped = t.unpaired, t.late, t.malformed, t.dropped
}

// emit sends the snapshot's metrics: the work of a scrape, lock-free.
func (s *snapshot) emit(ch chan<- prometheus.Metric) {
	for _, c := range s.counts {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(c.n), c.namespace, c.workload, c.qname, c.qtype, c.rcode)
	}
	for i := range s.durations {
		d := &s.durations[i]
		ch <- d.h.Metric(durationDesc, buckets, d.namespace, d.workload, d.qtype, d.rcode)
	}
	ch <- prometheus.MustNewConstMetric(overflowDesc, prometheus.CounterValue, float64(s.overflow), "qname")
	ch <- prometheus.MustNewConstMetric(seriesDesc, prometheus.GaugeValue, float64(len(s.counts)), "strata_dns_requests_total")
	ch <- prometheus.MustNewConstMetric(seriesDesc, prometheus.GaugeValue, float64(len(s.durations)*(len(buckets)+3)), "strata_dns_request_duration_seconds")
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(s.pending))
	for _, r := range [...]struct {
		outcome string
		n       uint64
	}{{"unpaired", s.unpaired}, {"late", s.late}, {"malformed", s.malformed}, {"dropped", s.dropped}} {
		ch <- prometheus.MustNewConstMetric(recordsDesc, prometheus.CounterValue, float64(r.n), r.outcome)
	}
}
