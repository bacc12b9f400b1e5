// Package dns names outside addresses after what the application asked
// for: the answers seen on the wire fill a cache of address -> name per
// client network namespace, keeping the name in the question (api.twilio.com),
// not the end of a CNAME chain (a CDN's host), for as long as the TTL says
// plus a grace period.
package dns

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// Answer is what one DNS response taught: the name asked and the addresses
// it resolved to, each with its TTL.
type Answer struct {
	ID    uint16 // the message's, as in its query
	Name  string // the question, lower case, without the final dot
	Type  string // A, AAAA, ...
	Rcode string // NOERROR, NXDOMAIN, ...
	Addrs []Addr
}

// Query is a standard query's id and question.
type Query struct {
	ID   uint16
	Name string // lower case, without the final dot
	Type string
}

// Addr is one resolved address and how long it may be used.
type Addr struct {
	IP  netip.Addr
	TTL time.Duration
}

// Parse reads a DNS response message. Addresses reached through a CNAME
// chain are attributed to the name in the question. A message cut short
// (the probes keep the first 512 bytes) gives the answers that are whole.
func Parse(msg []byte) (Answer, bool) {
	var m mdns.Msg
	if err := m.Unpack(msg); err != nil {
		if !partial(msg, &m) {
			return Answer{}, false
		}
	}
	if !m.Response || len(m.Question) != 1 {
		return Answer{}, false
	}
	q := m.Question[0]
	a := Answer{
		ID:    m.Id,
		Name:  strings.TrimSuffix(strings.ToLower(q.Name), "."),
		Type:  typeName(q.Qtype),
		Rcode: mdns.RcodeToString[m.Rcode],
	}
	if a.Rcode == "" {
		a.Rcode = "RCODE" + strconv.Itoa(m.Rcode)
	}
	for _, rr := range m.Answer {
		ttl := time.Duration(rr.Header().Ttl) * time.Second
		switch r := rr.(type) {
		case *mdns.A:
			if ip, ok := netip.AddrFromSlice(r.A); ok {
				a.Addrs = append(a.Addrs, Addr{ip.Unmap(), ttl})
			}
		case *mdns.AAAA:
			if ip, ok := netip.AddrFromSlice(r.AAAA); ok {
				a.Addrs = append(a.Addrs, Addr{ip, ttl})
			}
		}
	}
	return a, true
}

// ParseQuery reads a standard query (the probes keep only those).
func ParseQuery(msg []byte) (Query, bool) {
	var m mdns.Msg
	if err := m.Unpack(msg); err != nil {
		if !partial(msg, &m) {
			return Query{}, false
		}
	}
	if m.Response || m.Opcode != mdns.OpcodeQuery || len(m.Question) != 1 {
		return Query{}, false
	}
	q := m.Question[0]
	return Query{ID: m.Id, Name: strings.TrimSuffix(strings.ToLower(q.Name), "."), Type: typeName(q.Qtype)}, true
}

func typeName(t uint16) string {
	if s, ok := mdns.TypeToString[t]; ok {
		return s
	}
	return "TYPE" + strconv.Itoa(int(t))
}

// partial reads the header, the one question and the whole answers of a
// message that does not unpack, being cut short; false if even the
// question is cut.
func partial(msg []byte, m *mdns.Msg) bool {
	if len(msg) < 12 || binary.BigEndian.Uint16(msg[4:]) != 1 {
		return false
	}
	flags := binary.BigEndian.Uint16(msg[2:])
	*m = mdns.Msg{}
	m.Id = binary.BigEndian.Uint16(msg)
	m.Response = flags&(1<<15) != 0
	m.Opcode = int(flags>>11) & 0xf
	m.Rcode = int(flags & 0xf)
	name, off, err := mdns.UnpackDomainName(msg, 12)
	if err != nil || off+4 > len(msg) {
		return false
	}
	m.Question = []mdns.Question{{Name: name, Qtype: binary.BigEndian.Uint16(msg[off:]), Qclass: binary.BigEndian.Uint16(msg[off+2:])}}
	off += 4
	for n := binary.BigEndian.Uint16(msg[6:]); n > 0; n-- {
		rr, next, err := mdns.UnpackRR(msg, off)
		if err != nil || rr == nil {
			break
		}
		m.Answer = append(m.Answer, rr)
		off = next
	}
	return true
}

// Cache maps (client namespace, address) to the name the client asked for.
// It is bounded: when full, expired entries go first, else a random one.
// Only one goroutine uses it.
type Cache struct {
	grace time.Duration
	max   int
	now   func() time.Time
	names map[key]entry
}

type key struct {
	netns uint32
	ip    netip.Addr
}

type entry struct {
	name    string
	expires time.Time // TTL end plus grace
}

// NewCache keeps names for their TTL plus grace, max entries at most.
func NewCache(grace time.Duration, max int) *Cache {
	return &Cache{grace: grace, max: max, now: time.Now, names: map[key]entry{}}
}

// Learn records an answer seen by a client in netns.
func (c *Cache) Learn(netns uint32, a Answer) {
	now := c.now()
	for _, ad := range a.Addrs {
		k := key{netns, ad.IP}
		if _, ok := c.names[k]; !ok && len(c.names) >= c.max {
			c.evict(now)
		}
		c.names[k] = entry{name: a.Name, expires: now.Add(ad.TTL + c.grace)}
	}
}

// Name returns the name a client in netns resolved ip from, if it still may.
func (c *Cache) Name(netns uint32, ip netip.Addr) (string, bool) {
	e, ok := c.names[key{netns, ip}]
	if !ok {
		return "", false
	}
	if c.now().After(e.expires) {
		delete(c.names, key{netns, ip})
		return "", false
	}
	return e.name, true
}

// Len is the number of entries held.
func (c *Cache) Len() int { return len(c.names) }

// evict makes room: expired entries among a few looked at, else one of
// them (map order is random). Constant time, so a flood of random names
// costs no more per answer than a trickle.
func (c *Cache) evict(now time.Time) {
	looked := 0
	var victim key
	for k, e := range c.names {
		if now.After(e.expires) {
			delete(c.names, k)
			return
		}
		if looked == 0 {
			victim = k
		}
		if looked++; looked == 8 {
			break
		}
	}
	delete(c.names, victim)
}
