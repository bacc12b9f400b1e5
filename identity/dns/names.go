package dns

import (
	"cmp"
	"net/netip"
	"slices"

	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

// CIDR names the addresses of a prefix (a partner's VPN, an office).
type CIDR struct {
	Prefix netip.Prefix
	Name   string
}

// Names names the outside world: it wraps another Identifier and, where
// that one says a client's destination is the world, names it after what
// the client resolved (per client namespace), else after the most specific
// configured CIDR holding it. Everything else passes through.
type Names struct {
	Inner identity.Identifier
	Cache *Cache // nil: no DNS names
	cidrs []CIDR // most specific first
}

// NewNames wraps inner; cache may be nil, cidrs empty.
func NewNames(inner identity.Identifier, cache *Cache, cidrs []CIDR) Names {
	sorted := slices.Clone(cidrs)
	for i := range sorted {
		sorted[i].Prefix = sorted[i].Prefix.Masked()
	}
	slices.SortStableFunc(sorted, func(a, b CIDR) int { return cmp.Compare(b.Prefix.Bits(), a.Prefix.Bits()) })
	return Names{Inner: inner, Cache: cache, cidrs: sorted}
}

var _ identity.Identifier = Names{}

func (n Names) Observe(e *event.TCP) { n.Inner.Observe(e) }
func (n Names) Forget(sock uint64)   { n.Inner.Forget(sock) }

func (n Names) Identify(e *event.TCP) identity.Pair {
	return n.name(n.Inner.Identify(e), e)
}

// Retry lets the inner resolver name a pending pair again (when it can),
// then names the world in it. A destination already named after a DNS
// answer keeps that name: it is the answer the client connected after, and
// the cache may hold a later one for the same address by now.
func (n Names) Retry(p identity.Pair, e *event.TCP) identity.Pair {
	before := p.Destination
	if r, ok := n.Inner.(identity.Late); ok {
		p = r.Retry(p, e)
	}
	if p.Destination.Name == identity.World && p.Destination.Namespace == "" &&
		before.Namespace == "" && before.Name != identity.World && before.Name != "" && p.Reporter == identity.Client {
		p.Destination = before
		return p
	}
	return n.name(p, e)
}

func (n Names) name(p identity.Pair, e *event.TCP) identity.Pair {
	if p.Reporter != identity.Client || p.Destination.Name != identity.World || p.Destination.Namespace != "" {
		return p
	}
	if name := n.Outside(e.Netns, e.Remote.Addr()); name != "" {
		p.Destination.Name = name
	}
	return p
}

// Outside names an address outside the host or cluster as a client in
// netns knows it: the DNS name it resolved, else a CIDR name, else "".
func (n Names) Outside(netns uint32, a netip.Addr) string {
	a = a.Unmap()
	if n.Cache != nil {
		if name, ok := n.Cache.Name(netns, a); ok {
			return name
		}
	}
	for _, c := range n.cidrs {
		if c.Prefix.Contains(a) {
			return c.Name
		}
	}
	return ""
}
