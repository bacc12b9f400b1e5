// Package http captures HTTP/1.x requests and responses at the syscall
// layer and decodes them into event.HTTP.
package http

import (
	"bytes"
	"errors"
	"net/netip"
	"unsafe"

	"github.com/stratanet/strata/probes/event"
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
	switch r.Family {
	case 0: // a response: its request named the socket
		if !e.Response {
			return event.HTTP{}, errors.New("http: request without addresses")
		}
	case 2:
		e.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(r.Saddr[:4])), r.Sport)
		e.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(r.Daddr[:4])), r.Dport)
	case 10:
		e.Local = netip.AddrPortFrom(netip.AddrFrom16(r.Saddr).Unmap(), r.Sport)
		e.Remote = netip.AddrPortFrom(netip.AddrFrom16(r.Daddr).Unmap(), r.Dport)
	default:
		return event.HTTP{}, errors.New("http: unknown address family")
	}
	n := min(int(r.Captured), len(r.Data))
	if n > 0 {
		Fill(&e, unsafe.String(&r.Data[0], n)) // copies what it keeps
	}
	c := unsafe.Slice((*byte)(unsafe.Pointer(&r.Comm[0])), len(r.Comm))
	if i := bytes.IndexByte(c, 0); i >= 0 {
		c = c[:i]
	}
	e.Comm = comms.intern(c)
	return e, nil
}

// commCache hands out one string per process name instead of one per
// record. Only the reader goroutine decodes; it is reset when it grows.
type commCache map[string]string

var comms = commCache{}

func (m commCache) intern(b []byte) string {
	if s, ok := m[string(b)]; ok { // no allocation for the lookup
		return s
	}
	if len(m) > 4096 {
		clear(m)
	}
	s := string(b)
	m[s] = s
	return s
}
