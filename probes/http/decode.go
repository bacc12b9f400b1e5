// Package http captures HTTP/1.x requests and responses at the syscall
// layer and decodes them into event.HTTP.
package http

import (
	"errors"
	"unsafe"

	"github.com/stratanet/strata/probes/event"
	"github.com/stratanet/strata/probes/fields"
)

type record = httpHttpRecord

var recordSize = int(unsafe.Sizeof(record{}))

// FirstKind is the smallest record kind of this family; the ring holds
// the TCP probes' records too, all below it.
const FirstKind = 32

// Decode turns one ring-buffer sample into an event.
func Decode(raw []byte) (event.HTTP, error) {
	if len(raw) < recordSize {
		return event.HTTP{}, errors.New("http: short record")
	}
	var r record
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&r)), recordSize), raw)
	e := event.HTTP{
		Mono:     r.TsNs,
		Sock:     r.Sk,
		PID:      r.Pid,
		Netns:    r.Netns,
		Size:     r.Size,
		Response: r.Kind == FirstKind+1,
		Received: r.Dir == 1,
	}
	if r.Kind != FirstKind && r.Kind != FirstKind+1 {
		return event.HTTP{}, errors.New("http: unknown record kind")
	}
	if r.Family == 0 { // a response: its request named the socket
		if !e.Response {
			return event.HTTP{}, errors.New("http: request without addresses")
		}
	} else {
		var ok bool
		e.Local, ok = fields.AddrPort(r.Family, r.Saddr, r.Sport)
		e.Remote, _ = fields.AddrPort(r.Family, r.Daddr, r.Dport)
		if !ok {
			return event.HTTP{}, errors.New("http: unknown address family")
		}
	}
	n := min(int(r.Captured), len(r.Data))
	if n > 0 {
		Fill(&e, unsafe.String(&r.Data[0], n)) // copies what it keeps
	}
	e.Comm = comms.Intern(fields.Comm(r.Comm[:]))
	return e, nil
}

var comms = fields.Comms{}
