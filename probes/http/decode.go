// Package http captures HTTP/1.x requests and responses at the socket
// layer and decodes them into event.HTTP.
package http

import (
	"errors"
	"unsafe"

	"github.com/stratanet/strata/probes/event"
	"github.com/stratanet/strata/probes/fields"
	"github.com/stratanet/strata/probes/kind"
)

// Both objects write the same record (bpf/http.h).
type record = sockHttpRecord

var (
	recordSize = int(unsafe.Sizeof(record{}))
	headerSize = int(unsafe.Offsetof(record{}.Data)) // a record may end after its captured bytes
)

type tallyRecord = sockHttpTally

// The kernel's buckets are event.HTTPBuckets and +Inf.
var _ = [1]struct{}{}[len(tallyRecord{}.Slots[0].Counts)-len(event.TallySlot{}.Counts)]

// DecodeTally turns one tally record into an event.
func DecodeTally(raw []byte) (*event.HTTPTally, error) {
	var r tallyRecord
	if len(raw) < int(unsafe.Sizeof(r)) {
		return nil, errors.New("http: short tally record")
	}
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&r)), unsafe.Sizeof(r)), raw)
	if r.Kind != kind.HTTPTally {
		return nil, errors.New("http: not a tally record")
	}
	t := &event.HTTPTally{Sock: r.Sk, Cookie: r.Cookie, Netns: r.Netns, Local: r.Sport, Remote: r.Dport, Final: r.Final != 0}
	for i := range r.Slots {
		k := &r.Slots[i]
		t.Slots[i] = event.TallySlot{Used: k.Key != 0, Status: int(k.Status), Counts: k.Counts, Sum: k.SumNs}
	}
	return t, nil
}

// Decode turns one ring-buffer sample into an event.
func Decode(raw []byte) (event.HTTP, error) {
	if len(raw) < headerSize {
		return event.HTTP{}, errors.New("http: short record")
	}
	r := (*record)(unsafe.Pointer(unsafe.SliceData(raw)))
	// The ring aligns to 8, but be sure; and a record cut after its
	// captured bytes is read from a whole copy.
	if len(raw) < recordSize || uintptr(unsafe.Pointer(r))%unsafe.Alignof(*r) != 0 {
		scratch = record{}
		copy(unsafe.Slice((*byte)(unsafe.Pointer(&scratch)), recordSize), raw)
		r = &scratch
	}
	if int(r.Captured) > len(raw)-headerSize {
		return event.HTTP{}, errors.New("http: record shorter than its captured bytes")
	}
	e := event.HTTP{
		Mono:     r.TsNs,
		Sock:     r.Sk,
		PID:      r.Pid,
		Netns:    r.Netns,
		Size:     r.Size,
		Response: r.Kind == kind.HTTPResponse,
		Received: r.Dir == 1,
	}
	switch r.Kind {
	case kind.HTTPResponse:
		if n := min(int(r.HeadLen), len(r.Head)); n > 0 {
			Fill(&e, unsafe.String(&r.Head[0], n))
		}
		return e, nil // its request named the socket
	case kind.HTTPRequest, kind.HTTPExchange, kind.HTTPUnanswered:
	default:
		return event.HTTP{}, errors.New("http: unknown record kind")
	}
	var ok bool
	e.Local, ok = fields.AddrPort(r.Family, r.Saddr, r.Sport)
	e.Remote, _ = fields.AddrPort(r.Family, r.Daddr, r.Dport)
	if !ok {
		return event.HTTP{}, errors.New("http: unknown address family")
	}
	if n := min(int(r.Captured), len(r.Data)); n > 0 {
		fill(&e, unsafe.String(&r.Data[0], n), keepPath) // copies what it keeps
	}
	e.Comm = comms.Intern(fields.Comm(r.Comm[:]))
	if r.Kind == kind.HTTPRequest {
		return e, nil
	}
	if r.EndNs == 0 {
		return event.HTTP{}, errors.New("http: paired request without an end")
	}
	e.Ended = r.EndNs
	if r.Slot > 0 {
		if r.Kind != kind.HTTPExchange || int(r.Slot) > len(event.HTTPTally{}.Slots) {
			return event.HTTP{}, errors.New("http: bad tally slot")
		}
		e.Slot, e.Cookie = int(r.Slot), r.Cookie
	}
	if r.Kind == kind.HTTPExchange {
		n := min(int(r.HeadLen), len(r.Head))
		resp, ok := ParseResponse(unsafe.String(&r.Head[0], n))
		e.Valid = e.Valid && ok
		e.Status = resp.Status
	}
	return e, nil
}

// Decode is used by one goroutine (the ring's reader), so it keeps its
// interned strings, and the whole copy of a record cut short, here.
var (
	comms, paths = fields.Strings{}, fields.Strings{}
	scratch      record
)

// keepPath interns request paths: most requests repeat a path seen before.
func keepPath(s string) string { return paths.InternString(s) }
