package dns

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

// fixed answers every pair with the same names.
type fixed struct {
	pair      identity.Pair
	observed  int
	forgotten uint64
}

func (f *fixed) Observe(*event.TCP)                { f.observed++ }
func (f *fixed) Identify(*event.TCP) identity.Pair { return f.pair }
func (f *fixed) Forget(s uint64)                   { f.forgotten = s }

func connect(netns uint32, remote string) *event.TCP {
	return &event.TCP{Kind: event.Connect, Netns: netns, Local: netip.MustParseAddrPort("10.244.0.2:40000"),
		Remote: netip.MustParseAddrPort(remote)}
}

func TestNamesOrder(t *testing.T) {
	c := NewCache(time.Minute, 100)
	c.Learn(1, Answer{Name: "api.twilio.com", Addrs: []Addr{{netip.MustParseAddr("10.250.9.7"), 5 * time.Second}}})
	inner := &fixed{pair: identity.Pair{Source: identity.Workload{Name: "curl"},
		Destination: identity.Workload{Name: identity.World}, Port: 443, Reporter: identity.Client}}
	n := NewNames(inner, c, []CIDR{
		{netip.MustParsePrefix("10.250.0.0/16"), "lab"},
		{netip.MustParsePrefix("10.250.9.0/24"), "partner-vpn"},
		{netip.MustParsePrefix("10.250.9.1/24"), "host-bits-ignored"}, // same prefix, later: loses
	})
	for _, c := range []struct {
		netns  uint32
		remote string
		want   string
	}{
		{1, "10.250.9.7:443", "api.twilio.com"},          // resolved by this namespace
		{2, "10.250.9.7:443", "partner-vpn"},             // another namespace did not resolve it
		{1, "10.250.9.8:443", "partner-vpn"},             // most specific CIDR
		{1, "10.250.1.1:443", "lab"},                     // wider CIDR
		{1, "192.0.2.1:443", identity.World},             // nothing knows it
		{1, "[::ffff:10.250.9.7]:443", "api.twilio.com"}, // mapped addresses too
	} {
		if got := n.Identify(connect(c.netns, c.remote)).Destination.Name; got != c.want {
			t.Errorf("netns %d -> %s: %q, want %q", c.netns, c.remote, got, c.want)
		}
	}
	if p := n.Identify(connect(1, "10.250.9.7:443")); p.Source.Name != "curl" || p.Port != 443 {
		t.Errorf("other labels changed: %+v", p)
	}
	n.Observe(connect(1, "10.250.9.7:443"))
	n.Forget(9)
	if inner.observed != 1 || inner.forgotten != 9 {
		t.Error("Observe/Forget not passed through")
	}
}

// Only a client's world destination is renamed: a process on this host, a
// Kubernetes workload, or the server end keep their names.
func TestNamesLeavesOthers(t *testing.T) {
	c := NewCache(time.Minute, 100)
	c.Learn(1, Answer{Name: "api.twilio.com", Addrs: []Addr{{netip.MustParseAddr("10.250.9.7"), 5 * time.Second}}})
	for _, p := range []identity.Pair{
		{Destination: identity.Workload{Name: "nginx"}, Reporter: identity.Client},
		{Destination: identity.Workload{Namespace: "shop", Name: identity.World}, Reporter: identity.Client},
		{Source: identity.Workload{Name: identity.World}, Destination: identity.Workload{Name: "nginx"}, Reporter: identity.Server},
		{Destination: identity.Workload{Name: identity.World}, Reporter: identity.Server},
	} {
		n := NewNames(&fixed{pair: p}, c, []CIDR{{netip.MustParsePrefix("0.0.0.0/0"), "everything"}})
		if got := n.Identify(connect(1, "10.250.9.7:443")); got != p {
			t.Errorf("%+v renamed to %+v", p, got)
		}
	}
}

// late is an inner resolver that names the destination only when retried.
type late struct{ fixed }

func (l *late) Retry(p identity.Pair, e *event.TCP) identity.Pair {
	p.Source.Name = "named-later"
	return p
}

func TestNamesRetry(t *testing.T) {
	c := NewCache(time.Minute, 100)
	c.Learn(1, Answer{Name: "api.twilio.com", Addrs: []Addr{{netip.MustParseAddr("10.250.9.7"), 5 * time.Second}}})
	in := &late{fixed{pair: identity.Pair{Destination: identity.Workload{Name: identity.World}, Reporter: identity.Client}}}
	n := NewNames(in, c, nil)
	p := n.Retry(in.pair, connect(1, "10.250.9.7:443"))
	if p.Source.Name != "named-later" || p.Destination.Name != "api.twilio.com" {
		t.Fatalf("%+v", p)
	}
	// Without a retrying inner resolver, Retry still names the world.
	n = NewNames(&in.fixed, c, nil)
	if p := n.Retry(in.pair, connect(1, "10.250.9.7:443")); p.Destination.Name != "api.twilio.com" {
		t.Fatalf("%+v", p)
	}
	// A later answer for the same address does not rename a connection
	// named after the answer it followed.
	n = NewNames(in, c, nil)
	first := n.Identify(connect(1, "10.250.9.7:443"))
	c.Learn(1, Answer{Name: "sms.twilio.com", Addrs: []Addr{{netip.MustParseAddr("10.250.9.7"), 5 * time.Second}}})
	if p := n.Retry(first, connect(1, "10.250.9.7:443")); p.Destination.Name != "api.twilio.com" {
		t.Errorf("renamed by a later answer: %+v", p.Destination)
	}
	if p := n.Identify(connect(1, "10.250.9.7:443")); p.Destination.Name != "sms.twilio.com" {
		t.Errorf("a new connection after the later answer: %+v", p.Destination)
	}
}

func TestNamesWithoutCache(t *testing.T) {
	n := NewNames(&fixed{pair: identity.Pair{Destination: identity.Workload{Name: identity.World}, Reporter: identity.Client}},
		nil, []CIDR{{netip.MustParsePrefix("10.250.9.0/24"), "partner-vpn"}})
	if got := n.Identify(connect(1, "10.250.9.7:443")).Destination.Name; got != "partner-vpn" {
		t.Fatalf("%q", got)
	}
}
