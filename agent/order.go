package agent

import (
	"sync/atomic"
	"time"

	"github.com/stratanet/strata/probes/event"
)

// order keeps the kernel's order through the event loop's waits for the
// host (identity/process): the loop never blocks on /proc or setns, but a
// record that needs what such a call will answer (a namespace seen for the
// first time) must not be named before the answer. So records are applied
// as they come until wait says one must wait; it and every record after it
// are then held, in order, and applied once the answers are in (resume).
// A hold is bounded in records and time: past either it is given up
// (release), counted, and the records are applied with what is known.
//
// Records are applied a run at a time (every record up to the next that
// must wait), so that the stages can take a run under one lock. That wait
// is asked of a run's records before any of them is applied changes
// nothing: what wait answers depends on the host's answers only.
type order struct {
	wait    func(*event.Record) bool // asks what e needs; true: hold from e on
	apply   func([]event.Record)     // a run of records, in order
	release func()                   // stop waiting for the answers asked for

	held    []event.Record
	since   time.Time // when the current hold began
	maxHeld int
	maxWait time.Duration
	holding atomic.Int64 // len(held), for /metrics
}

// Hold bounds: a namespace's listing takes about a millisecond; a hold
// this long or large means the worker is stuck or far behind.
const (
	maxHeld = 1 << 15
	maxWait = 2 * time.Second
)

func newOrder(wait func(*event.Record) bool, apply func([]event.Record), release func()) *order {
	return &order{wait: wait, apply: apply, release: release, maxHeld: maxHeld, maxWait: maxWait}
}

// push applies or holds a batch from the reader (which it may reuse after).
func (o *order) push(batch []event.Record, now time.Time) {
	if len(o.held) == 0 {
		i := 0
		for ; i < len(batch) && !o.wait(&batch[i]); i++ {
		}
		o.apply(batch[:i])
		if batch = batch[i:]; len(batch) > 0 {
			o.since = now
		}
	}
	o.held = append(o.held, batch...)
	if len(o.held) > o.maxHeld {
		o.giveUp()
	}
	o.holding.Store(int64(len(o.held)))
}

// resume applies the held records that need wait no more, in order, after
// an answer came: up to the next that must wait (a new hold from now).
func (o *order) resume(now time.Time) {
	i := 0
	for ; i < len(o.held) && !o.wait(&o.held[i]); i++ {
	}
	o.apply(o.held[:i])
	o.drop(i)
	if i > 0 {
		o.since = now
	}
}

// expire gives up a hold older than maxWait.
func (o *order) expire(now time.Time) {
	if len(o.held) > 0 && now.Sub(o.since) > o.maxWait {
		o.giveUp()
	}
}

// giveUp applies everything held with what is known. wait still runs for
// each record, so a namespace first seen among them is asked for (and may
// start the next hold with the records that follow).
func (o *order) giveUp() {
	o.release()
	for i := range o.held {
		o.wait(&o.held[i])
	}
	o.apply(o.held)
	o.drop(len(o.held))
}

func (o *order) drop(n int) {
	rest := copy(o.held, o.held[n:])
	clear(o.held[rest:])
	o.held = o.held[:rest]
	if cap(o.held) > 2*maxHeld && rest == 0 {
		o.held = nil // a burst's array goes
	}
	o.holding.Store(int64(len(o.held)))
}
