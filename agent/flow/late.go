package flow

import (
	"time"

	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

// Late naming. A connection, an HTTP request or a DNS lookup whose ends the
// identifier may name later (identity.Pair.Pending: a pod not reported yet)
// waits, counted nowhere, until the names are in or LateWindow is over; then
// it is counted once, under the pair it settled on. Each stage keeps what
// waits in a Late of its own, under its own lock, and settles it from its
// own Tick by asking the flow table (Name, Settle): names flow from the
// table to the stages, and the table calls none of them back.

// maxLate bounds what waits for names in each Late; beyond it, new
// arrivals are counted at once under their best guess.
const maxLate = 8192

// Wait is a pair waiting for names: as named so far, the event to name it
// again with, and since when it waits.
type Wait struct {
	pair  identity.Pair
	ev    event.TCP
	since time.Time
}

// Late is what a stage holds while it waits for names: each Wait with the
// value the stage counts once named, oldest first. The zero value is ready.
type Late[T any] struct {
	waits []waiting[T]
}

type waiting[T any] struct {
	w *Wait
	v T
}

// Full: a new arrival cannot wait (Name with a nil Wait names it at once).
func (l *Late[T]) Full() bool { return len(l.waits) >= maxLate }

// Len is how many wait.
func (l *Late[T]) Len() int { return len(l.waits) }

// Add keeps v until w settles.
func (l *Late[T]) Add(w *Wait, v T) { l.waits = append(l.waits, waiting[T]{w, v}) }

// Settle hands every wait that settle says is over to done, with its key,
// in the order they came; the rest keep waiting.
func (l *Late[T]) Settle(settle func(*Wait) (Key, bool), done func(T, Key)) {
	keep := l.waits[:0]
	for _, x := range l.waits {
		if k, ok := settle(x.w); ok {
			done(x.v, k)
		} else {
			keep = append(keep, x)
		}
	}
	clear(l.waits[len(keep):])
	l.waits = keep
}

// oneOff is an event that happens once (a failed connect, a reset) waiting
// for its pair's names; one on a connection that waits shares that
// connection's Wait, so that both settle on the same key.
type oneOff struct {
	Wait
	kind event.Kind
	at   time.Time // when it came, for its log event
}

// late is a connection counted aside until its pair is named.
type late struct {
	Wait       // ev is the event that named it first
	acc  stats // what it did meanwhile
}

// Name names the pair of the socket behind e: the connection's own when the
// table follows it (e.Kind says which end: Accept for a server, Connect for
// a client), else what its addresses resolve to now. Where an end may be
// named later it fills w and returns ok false: the caller keeps w in a Late
// and settles it with Settle. With w nil (the caller's Late is full) it
// names the pair now, under its best guess.
func (t *Table) Name(e *event.TCP, w *Wait) (Key, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	c := t.connOf(e)
	if c != nil && c.late == nil {
		return c.key, true
	}
	var p identity.Pair
	if c != nil {
		p = c.late.pair
	} else {
		p = t.id.Identify(e)
	}
	if !p.Pending || !t.canWait() || w == nil {
		return t.keyOfPair(p), true
	}
	*w = Wait{pair: p, ev: *e, since: t.now()}
	if c != nil { // wait as long as the connection
		w.ev, w.since = c.late.ev, c.late.since
	}
	return Key{}, false
}

// Settle names a waiting pair again: its key, and ok once its names are in
// or its window is over.
func (t *Table) Settle(w *Wait) (Key, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	w.pair = t.id.(identity.Late).Retry(w.pair, &w.ev) // only a Late identifier makes waits
	if t.waiting(w.pair, w.since, t.now()) {
		return Key{}, false
	}
	return t.keyOfPair(w.pair), true
}

// canWait: the identifier may name pairs later and the window is open
// (each Late says on its own whether it has room).
func (t *Table) canWait() bool {
	_, ok := t.id.(identity.Late)
	return ok && t.opts.LateWindow > 0
}

// guess is the key a waiting connection would be counted under now.
func (t *Table) guess(w *Wait) Key {
	w.pair = t.id.(identity.Late).Retry(w.pair, &w.ev)
	return t.keyOfPair(w.pair)
}

// waiting: p still has ends to name, and the window since it began is open.
func (t *Table) waiting(p identity.Pair, since, now time.Time) bool {
	return p.Pending && now.Sub(since) < t.opts.LateWindow
}
