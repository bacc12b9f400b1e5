package httpflow

import (
	"encoding/hex"
	"strconv"

	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/probes/event"
)

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
		if s == nil || len(s.queue) >= t.opts.MaxPending {
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
		if len(t.socks) >= t.opts.MaxSockets {
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
	if len(t.routes) >= t.opts.MaxRoutes {
		return flow.Other
	}
	r := string(b)
	t.routes[r] = r
	return r
}
