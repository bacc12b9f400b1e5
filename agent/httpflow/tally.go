package httpflow

import (
	"time"

	"github.com/stratanet/strata/agent/hist"
	"github.com/stratanet/strata/probes/event"
)

// tallied is a socket whose exchanges the kernel counts in slots
// (event.HTTPTally); each slot's first exchange came as a record.
type tallied struct {
	cookie uint64
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

// slot is the tally slot e opens, nil if it opens none or the table is full.
func (t *Table) slot(e *event.HTTP) *slot {
	if e.Slot == 0 {
		return nil
	}
	ts := t.tallies[e.Sock]
	if ts == nil || ts.cookie != e.Cookie { // a new socket at a freed one's address
		if ts == nil && len(t.tallies) >= t.opts.MaxSockets {
			t.dropped++ // its later counts will be dropped too, and counted so
			return nil
		}
		t.forget(e.Sock)
		ts = &tallied{cookie: e.Cookie}
		t.tallies[e.Sock] = ts
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
func (t *Table) forget(sock uint64) { delete(t.tallies, sock) }
