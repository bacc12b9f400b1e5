package httpflow

import (
	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/probes/event"
)

// done is a completed request, to be counted once named.
type done struct {
	key    flow.Key
	who    event.TCP
	server bool
	p      pending
	status string
	end    uint64
	slot   *slot // the tally slot it opened, nil if none
}

// Namer names a socket's pair (the flow table; e.Kind is Accept for the
// server end): the connection's own when known, else by resolving its
// addresses afresh; where an end may be named later (a pod not reported
// yet), it says what to wait with (flow.Table.Name, Settle).
type Namer interface {
	Name(e *event.TCP, w *flow.Wait) (flow.Key, bool)
	Settle(w *flow.Wait) (flow.Key, bool)
}

// complete names a finished request after its connection: the table's
// own pair when it follows the socket, else what its ends resolve to now.
// A request whose ends are not named yet waits, as its connection does,
// and is counted from Tick once they are.
func (t *Table) complete(who event.TCP, server bool, p pending, status string, end uint64, sl *slot) {
	d := done{who: who, server: server, p: p, status: status, end: end, slot: sl}
	// The namer gets the table's own copies: pointers to locals would move
	// them to the heap, once per request.
	t.who = who
	w := &t.wait
	if t.late.Full() {
		w = nil // named now, by guess
	}
	if key, ok := t.names.Name(&t.who, w); ok { // most requests
		d.key = key
		t.observe(d)
		return
	}
	wait := new(flow.Wait)
	*wait = t.wait
	t.late.Add(wait, d)
}

// settle counts the requests whose names came (or whose wait is over).
func (t *Table) settle() {
	if t.late.Len() == 0 {
		return
	}
	t.late.Settle(t.names.Settle, func(d done, k flow.Key) {
		d.key = k
		t.observe(d)
	})
}
