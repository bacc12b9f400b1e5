// Package dns captures the DNS messages clients exchange with port 53 at
// the syscall layer (UDP and TCP) and decodes them into event.DNS.
package dns

import (
	"bytes"
	"errors"
	"unsafe"

	"github.com/stratanet/strata/probes/event"
	"github.com/stratanet/strata/probes/fields"
	"github.com/stratanet/strata/probes/kind"
)

type record = dnsDnsRecord

var recordSize = int(unsafe.Sizeof(record{}))

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
	if !kind.IsDNS(r.Kind) {
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
		Response: r.Kind == kind.DNSResponse,
		Size:     r.Size,
	}
	var ok bool
	e.Local, ok = fields.AddrPort(r.Family, r.Saddr, r.Sport)
	e.Remote, _ = fields.AddrPort(r.Family, r.Daddr, r.Dport)
	if !ok {
		return event.DNS{}, errors.New("dns: unknown address family")
	}
	n := min(int(r.Captured), len(r.Data), int(r.Size))
	if n < 12 {
		return event.DNS{}, errors.New("dns: message shorter than its header")
	}
	e.Msg = bytes.Clone(r.Data[:n])
	e.Comm = comms.Intern(fields.Comm(r.Comm[:]))
	return e, nil
}

var comms = fields.Strings{}
