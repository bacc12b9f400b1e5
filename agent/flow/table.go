// Package flow aggregates TCP events into per-identity-pair series: the
// agent's one table of connections and their counters. Events come from a
// single goroutine; a scrape holds the same lock only to copy the values,
// a bounded chunk at a time.
package flow

import (
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"go.uber.org/zap"
	"golang.org/x/sys/unix"

	"github.com/stratanet/strata/agent/emit"
	"github.com/stratanet/strata/agent/hist"
	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

// Connection results, as the contract names them.
const (
	Success = iota
	Refused
	Timeout
	Reset
	OtherResult
	numResults
)

var resultNames = [numResults]string{"success", "refused", "timeout", "reset", "other"}

// Result classifies a failed connect by the socket's error. A connect the
// application abandoned before any answer (err 0) timed out from its view.
func Result(err syscall.Errno) int {
	switch err {
	case syscall.ECONNREFUSED:
		return Refused
	case syscall.ETIMEDOUT, 0:
		return Timeout
	case syscall.ECONNRESET:
		return Reset
	}
	return OtherResult
}

// RTT histogram bounds in seconds: loopback (tens of µs) to intercontinental.
var rttBuckets = []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5}

// Options for a Table.
type Options struct {
	Budgets  Budgets
	MaxConns int // live sockets tracked; beyond that new ones are counted, not followed
	// Retransmit bursts: this many retransmitted segments of one connection
	// within Window make one burst (logged once per burst).
	BurstSegments int
	BurstWindow   time.Duration
	// Events receives failed connects, resets and retransmit bursts; nil:
	// counted only.
	Events emit.Events
	// LateWindow is how long a connection whose ends the identifier may
	// name later (identity.Pair.Pending) waits for them before it is
	// counted under its best guess.
	LateWindow time.Duration
	// Gone says since when a Kubernetes workload no longer exists; its
	// series are dropped GoneGrace later (once no connection of theirs is
	// open). nil: series live as long as the agent.
	Gone      GoneFunc
	GoneGrace time.Duration
}

// GoneFunc says since when no workload of this name exists in namespace.
type GoneFunc func(namespace, workload string) (since time.Time, ok bool)

func DefaultOptions() Options {
	return Options{Budgets: DefaultBudgets(), MaxConns: 1 << 18, BurstSegments: 10, BurstWindow: time.Second, LateWindow: 10 * time.Second}
}

type stats struct {
	connections    [numResults]uint64
	active         int64
	sent, received uint64
	retransmits    uint64
	resetsSent     uint64
	resetsReceived uint64
	rtt            hist.Histogram
}

// tombstone is a closed socket: its address and ends, so that late events
// find its pair, and a new socket at the same address is not mistaken for it.
type tombstone struct {
	sock          uint64
	local, remote netip.AddrPort
}

type conn struct {
	key           Key
	local, remote netip.AddrPort
	stats         *stats // the flow of key: flows are never removed
	netns         uint32
	last          event.Counters
	seen          uint32 // last sweep that saw it
	// provisional: first seen by a sweep, named before every namespace was
	// known; named again when it first has traffic to count.
	provisional bool
	missed      int // consecutive sweeps of its namespace that did not see it

	burstStart time.Time
	burstCount int

	late *late // waiting for its ends' names: counted nowhere yet
}

// Table is the flow table.
type Table struct {
	log  *zap.Logger
	id   identity.Identifier
	opts Options
	now  func() time.Time

	mu        sync.Mutex
	gov       *governor
	keys      map[identity.Pair]*pairKey // the governor's answers and their flows, remembered
	conns     map[uint64]*conn
	byNetns   map[uint32]map[uint64]*conn // the same sockets by namespace, for sweep ends
	closed    map[tombstone]*conn         // recently closed sockets, for events that trail the close
	older     map[tombstone]*conn         // the generation of closed sockets before
	lates     Late[*conn]                 // connections waiting for names
	oneOffs   Late[*oneOff]               // failed connects and resets waiting for names
	pruned    time.Time                   // last look for series of deleted workloads
	flows     map[Key]*stats
	order     []flowRef // every flow, oldest first: what a scrape copies, a chunk at a time
	pruneGen  uint64    // counts prunes, which reorder: a scrape's copy then starts again
	untracked uint64    // sockets not followed because MaxConns was reached
	stale     uint64    // sockets dropped after vanishing without a close record
	lastDrops uint64    // snapshot drops reported by the previous sweep end

	scrape sync.Mutex // held by a Collect, which owns snap
	snap   snapshot   // a scrape's copy of the values, its buffers reused
}

func NewTable(log *zap.Logger, id identity.Identifier, opts Options) *Table {
	return &Table{
		log: log, id: id, opts: opts, now: time.Now,
		gov:     newGovernor(opts.Budgets),
		keys:    map[identity.Pair]*pairKey{},
		conns:   map[uint64]*conn{},
		byNetns: map[uint32]map[uint64]*conn{},
		closed:  map[tombstone]*conn{},
		flows:   map[Key]*stats{},
	}
}

// Apply folds one event into the table.
func (t *Table) Apply(e *event.TCP) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.apply(e)
}

// ApplyAll folds a run of TCP records into the table under one hold of its
// lock (a lock and unlock per record was a tenth of the event loop's time
// in a storm). observe, when not nil, is shown each record just before it
// is folded, as the loop's identifier must see every record in order.
func (t *Table) ApplyAll(rs []event.Record, observe func(*event.TCP)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for i := range rs {
		if observe != nil {
			observe(&rs[i].TCP)
		}
		t.apply(&rs[i].TCP)
	}
}

func (t *Table) apply(e *event.TCP) {
	switch e.Kind {
	case event.Connect, event.Accept:
		if old := t.conns[e.Sock]; old != nil { // its close was lost
			t.end(e.Sock, old)
		}
		t.track(e).stats.connections[Success]++
	case event.ConnectFailed:
		t.oneOff(e, nil)
	case event.Snapshot:
		if e.State == event.StateListen {
			return
		}
		c := t.conns[e.Sock]
		if c == nil {
			// Opened before the agent started (or its open was lost): its
			// bytes so far are the baseline, not traffic of this run.
			t.track(e).provisional = true
			return
		}
		c.seen = e.Sweep
		t.account(c, e)
	case event.Close:
		if c := t.conns[e.Sock]; c != nil {
			t.account(c, e)
			t.end(e.Sock, c)
		}
	case event.ResetSent, event.ResetReceived:
		if e.Kind == event.ResetReceived && e.State == event.StateSynSent {
			return // a refused connect: counted as such when the connect fails
		}
		// An aborting close sends its RST after the socket reached CLOSE.
		switch c := t.connOf(e); {
		case c == nil:
			t.oneOff(e, nil)
		case c.late != nil:
			t.oneOff(e, &c.late.Wait)
		default:
			t.count(e.Kind, c.key, e, t.now())
		}
	case event.Retransmit:
		if c := t.conns[e.Sock]; c != nil {
			t.burst(c, e)
		}
	case event.SweepEnd:
		t.sweepEnd(e)
	}
}

// oneOff counts an event that happens once under its pair, now or, when
// its names may come later, once they have (with conn's, the Wait of the
// connection it happened on, when that connection waits).
func (t *Table) oneOff(e *event.TCP, conn *Wait) {
	at := t.now()
	var w Wait // on the stack unless it must wait: a storm's resets are many
	if conn != nil {
		w = *conn
		w.ev.Local, w.ev.Remote, w.ev.Err = e.Local, e.Remote, e.Err
	} else {
		w = Wait{pair: t.id.Identify(e), ev: *e, since: at}
	}
	if w.pair.Pending && t.canWait() && !t.oneOffs.Full() {
		o := &oneOff{Wait: w, kind: e.Kind, at: at}
		t.oneOffs.Add(&o.Wait, o)
		return
	}
	t.count(e.Kind, t.keyOfPair(w.pair), &w.ev, at)
}

// count adds a one-off event to its flow and tells the event sink.
func (t *Table) count(kind event.Kind, k Key, e *event.TCP, at time.Time) {
	switch kind {
	case event.ConnectFailed:
		r := Result(e.Err)
		t.flow(k).connections[r]++
		t.notify(emit.ConnectFailed, k, e, at, "error", resultNames[r], "errno", errnoName(e.Err))
	case event.ResetSent:
		t.flow(k).resetsSent++
		t.notify(emit.Reset, k, e, at, "direction", "sent")
	case event.ResetReceived:
		t.flow(k).resetsReceived++
		t.notify(emit.Reset, k, e, at, "direction", "received")
	}
}

// track starts following a live socket.
func (t *Table) track(e *event.TCP) *conn {
	c := &conn{local: e.Local, remote: e.Remote, netns: e.Netns, last: e.Counters}
	if p := t.id.Identify(e); p.Pending && t.canWait() && !t.lates.Full() {
		c.late = &late{Wait: Wait{pair: p, ev: *e, since: t.now()}}
		c.stats = &c.late.acc
		t.lates.Add(&c.late.Wait, c)
	} else {
		c.key, c.stats = t.flowOfPair(p)
	}
	if len(t.conns) >= t.opts.MaxConns {
		t.untracked++
		return c
	}
	c.stats.active++
	t.conns[e.Sock] = c
	ns := t.byNetns[c.netns] // emptied ones stay until Tick: a storm empties and refills them
	if ns == nil {
		ns = map[uint64]*conn{}
		t.byNetns[c.netns] = ns
	}
	ns[e.Sock] = c
	return c
}

func (t *Table) end(sock uint64, c *conn) {
	c.stats.active--
	delete(t.conns, sock)
	delete(t.byNetns[c.netns], sock)
	t.id.Forget(sock)
	// Two generations, the older dropped whole: deleting the oldest of one
	// map at each close left it so full of deleted slots that inserts
	// probed far (a fifth of the agent's CPU under a new connection per
	// request). The older map is cleared and reused: clear leaves no
	// deleted slots behind, and nothing is allocated per generation.
	if len(t.closed) >= maxClosed {
		if t.older == nil {
			t.older = make(map[tombstone]*conn, maxClosed)
		}
		clear(t.older)
		t.older, t.closed = t.closed, t.older
	}
	t.closed[tombstone{sock, c.local, c.remote}] = c
}

// maxClosed bounds the memory of closed sockets, per generation: enough for
// the events that trail a close by microseconds, even at thousands of
// closes per second.
const maxClosed = 4096

// account adds what a socket did since it was last seen.
func (t *Table) account(c *conn, e *event.TCP) {
	// A connection still waiting is named when it settles: naming it now
	// would only spend budget slots on a guess.
	if c.provisional && c.late == nil {
		if k := t.keyOf(e); k != c.key {
			c.stats.active--
			c.key, c.stats = k, t.flow(k)
			c.stats.active++
		}
	}
	c.provisional = false
	s := c.stats
	s.sent += delta(e.SentBytes, c.last.SentBytes)
	s.received += delta(e.ReceivedBytes, c.last.ReceivedBytes)
	s.retransmits += delta(e.Retransmits, c.last.Retransmits)
	if e.SRTT > 0 {
		s.rtt.Observe(rttBuckets, e.SRTT.Seconds())
	}
	c.last = e.Counters
}

// delta of a kernel counter; a counter that went backwards is a new socket
// at a reused address, whose baseline this sample becomes.
func delta(now, before uint64) uint64 {
	if now < before {
		return 0
	}
	return now - before
}

func (t *Table) burst(c *conn, e *event.TCP) {
	now := t.now()
	if now.Sub(c.burstStart) > t.opts.BurstWindow {
		c.burstStart, c.burstCount = now, 0
	}
	c.burstCount++
	if c.burstCount == t.opts.BurstSegments {
		k := c.key
		if c.late != nil { // its names may still come: the best guess now
			k = t.guess(&c.late.Wait)
		}
		t.notify(emit.RetransmitBurst, k, e, now, "segments", strconv.Itoa(c.burstCount), "within", t.opts.BurstWindow.String())
	}
}

// notify sends a connection event: who talked to whom, from which address
// to which, and what went wrong.
func (t *Table) notify(kind string, k Key, e *event.TCP, at time.Time, detail ...string) {
	if t.opts.Events == nil {
		return
	}
	src, dst := e.Local, e.Remote
	if k.Reporter == string(identity.Server) {
		src, dst = dst, src
	}
	f := make([]string, 0, 24)
	for i, v := range k.Values() {
		if v != "" {
			f = append(f, KeyLabels[i], v)
		}
	}
	f = append(f, "source_addr", src.String(), "destination_addr", dst.String())
	f = append(f, detail...)
	t.opts.Events.Push(emit.Event{Time: at, Kind: kind, Namespace: k.SourceNamespace, Fields: f})
}

// errnoName is the socket error as C names it (ECONNREFUSED), "" for none.
func errnoName(err syscall.Errno) string {
	if err == 0 {
		return "none"
	}
	if n := unix.ErrnoName(err); n != "" {
		return n
	}
	return strconv.Itoa(int(err))
}

// sweepEnd drops sockets of the swept namespace that two complete sweeps in
// a row did not see: their close record was lost. A sweep that lost
// snapshots proves nothing and is skipped.
func (t *Table) sweepEnd(e *event.TCP) {
	complete := e.Drops == t.lastDrops
	t.lastDrops = e.Drops
	if !complete {
		return
	}
	for sock, c := range t.byNetns[e.Netns] {
		if c.seen == e.Sweep {
			c.missed = 0
		} else if c.missed++; c.missed >= 2 {
			t.stale++
			t.end(sock, c)
		}
	}
}

func (t *Table) keyOf(e *event.TCP) Key {
	return t.keyOfPair(t.id.Identify(e))
}

func (t *Table) keyOfPair(p identity.Pair) Key { return t.pairKey(p).key }

// flowOfPair is p's key and flow: for a pair seen before, one lookup.
func (t *Table) flowOfPair(p identity.Pair) (Key, *stats) {
	pk := t.pairKey(p)
	if pk.stats == nil {
		pk.stats = t.flow(pk.key)
	}
	return pk.key, pk.stats
}

// pairKey is the governor's answer for a pair, and its flow once counted.
// Flows are deleted only by prune, which forgets every pairKey.
type pairKey struct {
	key   Key
	stats *stats // nil until flowOfPair
}

func (t *Table) pairKey(p identity.Pair) *pairKey {
	p.Pending = false // a guess and a sure name share their series
	if pk, ok := t.keys[p]; ok {
		return pk
	}
	k := t.gov.key(p)
	if _, ok := t.flows[k]; !ok && len(t.flows) >= t.opts.Budgets.Flows {
		t.gov.overflow["flows"]++
		return &pairKey{key: overflowKey(identity.Reporter(k.Reporter))}
	}
	if len(t.keys) >= 2*t.opts.Budgets.Flows { // pairs folded into ~other pile up here
		clear(t.keys)
	}
	pk := &pairKey{key: k}
	t.keys[p] = pk
	return pk
}

func (t *Table) flow(k Key) *stats {
	s := t.flows[k]
	if s == nil {
		s = &stats{}
		t.flows[k] = s
		t.order = append(t.order, flowRef{k, s})
	}
	return s
}

// flowRef is one flow in the order scrapes copy them.
type flowRef struct {
	key   Key
	stats *stats
}

// connOf is the live or recently closed connection behind e, or nil.
func (t *Table) connOf(e *event.TCP) *conn {
	if c := t.conns[e.Sock]; c != nil && c.local == e.Local && c.remote == e.Remote {
		return c
	}
	ts := tombstone{e.Sock, e.Local, e.Remote}
	if c := t.closed[ts]; c != nil {
		return c
	}
	return t.older[ts]
}

// Holds reports whether the table follows live sockets in network
// namespace netns. The sweep reads the HTTP probe's counts only there: a
// socket whose exchanges the kernel counts is one the table follows (from
// its connect or accept, or the sweep's snapshot of it), and namespaces
// with none are skipped, their walks can be long (TIME_WAIT).
func (t *Table) Holds(netns uint32) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.byNetns[netns]) > 0
}

// Tracked returns how many live sockets the table follows.
func (t *Table) Tracked() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.conns)
}

// Tick names again the connections waiting for names and counts those named
// or out of time, and drops the series of deleted workloads. The agent calls
// it about once a second.
func (t *Table) Tick() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for ns, conns := range t.byNetns {
		if len(conns) == 0 {
			delete(t.byNetns, ns)
		}
	}
	over := func(w *Wait) (Key, bool) {
		k := t.guess(w)
		return k, !t.waiting(w.pair, w.since, now)
	}
	t.lates.Settle(over, t.settle)
	t.oneOffs.Settle(over, func(o *oneOff, k Key) { t.count(o.kind, k, &o.ev, o.at) })
	if t.opts.Gone != nil && now.Sub(t.pruned) >= PruneEvery(t.opts.GoneGrace) {
		t.pruned = now
		t.prune(now)
	}
}

// PruneEvery is how often series of deleted workloads are looked for: often
// enough that they go within half a grace period of its end, rarely enough
// that the look (one pass over every series) costs nothing.
func PruneEvery(grace time.Duration) time.Duration {
	return max(time.Second, min(grace/2, 30*time.Second))
}

// GoneFor says whether a series naming these ends may go: an end in a
// namespace whose workload has been gone for grace.
func GoneFor(gone GoneFunc, grace time.Duration, now time.Time, ends ...[2]string) bool {
	for _, e := range ends {
		if e[0] == "" || e[1] == Other {
			continue
		}
		if since, ok := gone(e[0], e[1]); ok && now.Sub(since) >= grace {
			return true
		}
	}
	return false
}

// prune drops the series of workloads deleted more than GoneGrace ago and
// gives their label values back to the budgets.
func (t *Table) prune(now time.Time) {
	n := 0
	for k, s := range t.flows {
		if s.active > 0 {
			continue
		}
		if GoneFor(t.opts.Gone, t.opts.GoneGrace, now,
			[2]string{k.SourceNamespace, k.SourceWorkload}, [2]string{k.DestinationNamespace, k.DestinationWorkload}) {
			delete(t.flows, k)
			n++
		}
	}
	if n == 0 {
		return
	}
	keep := t.order[:0]
	for _, f := range t.order {
		if t.flows[f.key] == f.stats {
			keep = append(keep, f)
		}
	}
	clear(t.order[len(keep):])
	t.order = keep
	t.pruneGen++
	clear(t.keys)
	t.gov.reset()
	for k := range t.flows {
		t.gov.mark(k)
	}
	t.log.Debug("dropped the series of deleted workloads", zap.Int("series", n))
}

// settle moves what a waiting connection did into its flow.
func (t *Table) settle(c *conn, k Key) {
	acc := &c.late.acc
	s := t.flow(k)
	for i, n := range acc.connections {
		s.connections[i] += n
	}
	s.active += acc.active
	s.sent += acc.sent
	s.received += acc.received
	s.retransmits += acc.retransmits
	s.resetsSent += acc.resetsSent
	s.resetsReceived += acc.resetsReceived
	s.rtt.Add(&acc.rtt)
	c.key, c.stats, c.late = k, s, nil
}
