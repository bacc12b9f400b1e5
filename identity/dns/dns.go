// Package dns names outside addresses after what the application asked
// for: the answers seen on the wire fill a cache of address -> name per
// client network namespace, keeping the name in the question (api.twilio.com),
// not the end of a CNAME chain (a CDN's host), for as long as the TTL says
// plus a grace period.
package dns

import (
	"net/netip"
	"strconv"
	"strings"
	"time"

	mdns "github.com/miekg/dns"
)

// Answer is what one DNS response taught: the name asked and the addresses
// it resolved to, each with its TTL.
type Answer struct {
	Name  string // the question, lower case, without the final dot
	Type  string // A, AAAA, ...
	Rcode string // NOERROR, NXDOMAIN, ...
	Addrs []Addr
}

// Addr is one resolved address and how long it may be used.
type Addr struct {
	IP  netip.Addr
	TTL time.Duration
}

// Parse reads a DNS response message. Addresses reached through a CNAME
// chain are attributed to the name in the question.
func Parse(msg []byte) (Answer, bool) {
	var m mdns.Msg
	if err := m.Unpack(msg); err != nil || !m.Response || len(m.Question) != 1 {
		return Answer{}, false
	}
	q := m.Question[0]
	a := Answer{
		Name:  strings.TrimSuffix(strings.ToLower(q.Name), "."),
		Type:  mdns.TypeToString[q.Qtype],
		Rcode: mdns.RcodeToString[m.Rcode],
	}
	if a.Type == "" {
		a.Type = "TYPE" + strconv.Itoa(int(q.Qtype))
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
