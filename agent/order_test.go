package agent

import (
	"slices"
	"testing"
	"time"

	"github.com/stratanet/strata/probes/event"
)

// host is a fake resolver: namespaces it has not listed make records wait
// until answer lists them.
type host struct {
	known    map[uint32]bool
	asked    []uint32
	applied  []uint64 // socks, in the order applied
	released int
}

func (h *host) wait(r *event.Record) bool {
	if !h.known[r.TCP.Netns] && !slices.Contains(h.asked, r.TCP.Netns) {
		h.asked = append(h.asked, r.TCP.Netns)
	}
	for _, ns := range h.asked {
		if !h.known[ns] {
			return true
		}
	}
	return false
}

func (h *host) answer(ns uint32) { h.known[ns] = true }
func (h *host) apply(rs []event.Record) {
	for _, r := range rs {
		h.applied = append(h.applied, r.TCP.Sock)
	}
}
func (h *host) release()      { h.released++; h.asked = nil }
func (h *host) order() *order { return newOrder(h.wait, h.apply, h.release) }
func rec(sock uint64, ns uint32) event.Record {
	return event.Record{TCP: event.TCP{Sock: sock, Netns: ns}}
}

func TestOrderHoldsFromANewNamespaceUntilItsAnswer(t *testing.T) {
	h := &host{known: map[uint32]bool{1: true}}
	o := h.order()
	now := time.Unix(0, 0)
	o.push([]event.Record{rec(1, 1), rec(2, 2), rec(3, 1)}, now)
	o.push([]event.Record{rec(4, 1)}, now)
	if !slices.Equal(h.applied, []uint64{1}) || o.holding.Load() != 3 {
		t.Fatalf("applied %v, holding %d: want [1] and 3 held behind namespace 2", h.applied, o.holding.Load())
	}
	o.resume(now) // an answer for something else: still waiting
	if len(h.applied) != 1 {
		t.Fatalf("applied %v before namespace 2's answer", h.applied)
	}
	h.answer(2)
	o.resume(now)
	o.push([]event.Record{rec(5, 3), rec(6, 1)}, now) // namespace 3: a new hold
	if !slices.Equal(h.applied, []uint64{1, 2, 3, 4}) || o.holding.Load() != 2 {
		t.Fatalf("applied %v, holding %d: want 1-4 applied in order, 2 held", h.applied, o.holding.Load())
	}
	h.answer(3)
	o.resume(now)
	if !slices.Equal(h.applied, []uint64{1, 2, 3, 4, 5, 6}) || o.holding.Load() != 0 || h.released != 0 {
		t.Fatalf("applied %v, holding %d, released %d", h.applied, o.holding.Load(), h.released)
	}
}

// A worker that does not answer: after maxWait the records go on in order
// with what is known, and the hold is counted as given up.
func TestOrderGivesUpAfterMaxWait(t *testing.T) {
	h := &host{known: map[uint32]bool{}}
	o := h.order()
	start := time.Unix(0, 0)
	o.push([]event.Record{rec(1, 5), rec(2, 5)}, start)
	o.expire(start.Add(maxWait))
	if len(h.applied) != 0 {
		t.Fatalf("gave up at maxWait: %v", h.applied)
	}
	o.expire(start.Add(maxWait + time.Millisecond))
	if !slices.Equal(h.applied, []uint64{1, 2}) || h.released != 1 || o.holding.Load() != 0 {
		t.Fatalf("applied %v, released %d, holding %d", h.applied, h.released, o.holding.Load())
	}
}

// Held records are bounded: past maxHeld the hold is given up at once.
func TestOrderGivesUpPastMaxHeld(t *testing.T) {
	h := &host{known: map[uint32]bool{}}
	o := h.order()
	o.maxHeld = 3
	now := time.Unix(0, 0)
	o.push([]event.Record{rec(1, 5), rec(2, 5), rec(3, 5)}, now)
	if len(h.applied) != 0 {
		t.Fatalf("applied %v within the bound", h.applied)
	}
	o.push([]event.Record{rec(4, 5)}, now)
	if !slices.Equal(h.applied, []uint64{1, 2, 3, 4}) || h.released != 1 {
		t.Fatalf("applied %v, released %d: want all four, once", h.applied, h.released)
	}
}
