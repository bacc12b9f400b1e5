// Package fields turns the fixed-size fields every probe's records carry
// (addresses by family, NUL-padded process names) into Go values.
package fields

import (
	"bytes"
	"net/netip"
	"strings"
	"unsafe"
)

// Address families as the kernel numbers them.
const (
	AFInet  = 2
	AFInet6 = 10
)

// AddrPort is an address of family (its first 4 bytes for IPv4) and a port;
// false for any other family.
func AddrPort(family uint16, a [16]uint8, port uint16) (netip.AddrPort, bool) {
	switch family {
	case AFInet:
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte(a[:4])), port), true
	case AFInet6:
		return netip.AddrPortFrom(netip.AddrFrom16(a).Unmap(), port), true
	}
	return netip.AddrPort{}, false
}

// Comm is a task's comm up to its NUL, still in the record's memory.
func Comm(c []int8) []byte {
	b := unsafe.Slice((*byte)(unsafe.Pointer(&c[0])), len(c))
	if i := bytes.IndexByte(b, 0); i >= 0 {
		b = b[:i]
	}
	return b
}

// Strings hands out one string per value (process names, request paths)
// instead of one per record. Not safe for concurrent use: each decoder
// keeps its own, used by the one goroutine that reads its records. It is
// reset when it grows.
type Strings map[string]string

// Intern returns the string for b.
func (m Strings) Intern(b []byte) string {
	return m.InternString(unsafe.String(unsafe.SliceData(b), len(b)))
}

// InternString returns the kept copy of s, which may be a view of a buffer
// about to be reused.
func (m Strings) InternString(s string) string {
	if k, ok := m[s]; ok {
		return k
	}
	if len(m) > 4096 {
		clear(m)
	}
	k := strings.Clone(s)
	m[k] = k
	return k
}
