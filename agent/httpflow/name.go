package httpflow

import (
	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/probes/event"
)

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

// Namer names a socket's pair (e.Kind is Accept for the server end): the
// connection's own when known, else by resolving its addresses afresh.
type Namer interface {
	KeyFor(e *event.TCP) flow.Key
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
