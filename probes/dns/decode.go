// Package dns captures the DNS messages clients exchange with port 53 at
// the syscall layer (UDP and TCP) and decodes them into event.DNS.
package dns

import (
	"bytes"
	"errors"
	"net/netip"
	"unsafe"

	"github.com/stratanet/strata/probes/event"
)

type record = dnsDnsRecord

var recordSize = int(unsafe.Sizeof(record{}))

// FirstKind is the smallest record kind of this family; the ring holds the
// TCP and HTTP probes' records too, all below it.
const FirstKind = 34

const (
	ipprotoTCP = 6
	ipprotoUDP = 17
)

// Decode turns one ring-buffer sample into an event. It trusts nothing in
// the sample beyond what the layout allows.
func Decode(raw []byte) (event.DNS, error) {
	if len(raw) < recordSize {
		return event.DNS{}, errors.New("dns: short record")
	}
	var r record
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&r)), recordSize), raw)
	if r.Kind != FirstKind && r.Kind != FirstKind+1 {
		return event.DNS{}, errors.New("dns: unknown record kind")
	}
	if r.Proto != ipprotoUDP && r.Proto != ipprotoTCP {
		return event.DNS{}, errors.New("dns: unknown protocol")
	}
	e := event.DNS{
		Mono:     r.TsNs,
		PID:      r.Pid,
		Netns:    r.Netns,
		TCP:      r.Proto == ipprotoTCP,
		Response: r.Kind == FirstKind+1,
		Size:     r.Size,
	}
	switch r.Family {
	case 2:
		e.Local = netip.AddrPortFrom(netip.AddrFrom4([4]byte(r.Saddr[:4])), r.Sport)
		e.Remote = netip.AddrPortFrom(netip.AddrFrom4([4]byte(r.Daddr[:4])), r.Dport)
	case 10:
		e.Local = netip.AddrPortFrom(netip.AddrFrom16(r.Saddr).Unmap(), r.Sport)
		e.Remote = netip.AddrPortFrom(netip.AddrFrom16(r.Daddr).Unmap(), r.Dport)
	default:
		return event.DNS{}, errors.New("dns: unknown address family")
	}
	n := min(int(r.Captured), len(r.Data), int(r.Size))
	if n < 12 {
		return event.DNS{}, errors.New("dns: message shorter than its header")
	}
	e.Msg = bytes.Clone(r.Data[:n])
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
	if s, ok := m[string(b)]; ok {
		return s
	}
	if len(m) > 4096 {
		clear(m)
	}
	s := string(b)
	m[s] = s
	return s
}
