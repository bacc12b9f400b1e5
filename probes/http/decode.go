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

func decode(raw []byte) (event.HTTP, error) {
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
		Response: r.Kind == 2,
		Received: r.Dir == 1,
	}
	if r.Kind != 1 && r.Kind != 2 {
		return event.HTTP{}, errors.New("http: unknown record kind")
	}
	switch r.Family {
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
	e.Head = string(r.Data[:n])
	c := unsafe.Slice((*byte)(unsafe.Pointer(&r.Comm[0])), len(r.Comm))
	if i := bytes.IndexByte(c, 0); i >= 0 {
		c = c[:i]
	}
	e.Comm = string(c)
	return e, nil
}
