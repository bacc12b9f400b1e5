package dns

import (
	"fmt"
	"net"
	"net/netip"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
)

func response(t *testing.T, name string, qtype uint16, rcode int, rrs ...string) []byte {
	t.Helper()
	q := new(mdns.Msg)
	q.SetQuestion(mdns.Fqdn(name), qtype)
	m := new(mdns.Msg)
	m.SetRcode(q, rcode)
	for _, s := range rrs {
		rr, err := mdns.NewRR(s)
		if err != nil {
			t.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestParseKeepsTheNameAskedThroughCNAMEs(t *testing.T) {
	msg := response(t, "API.Twilio.com", mdns.TypeA, mdns.RcodeSuccess,
		"api.twilio.com. 30 IN CNAME edge.cdn.example.",
		"edge.cdn.example. 20 IN CNAME pop7.cdn.example.",
		"pop7.cdn.example. 10 IN A 10.250.0.7",
		"pop7.cdn.example. 10 IN A 10.250.0.8")
	a, ok := Parse(msg)
	if !ok || a.Name != "api.twilio.com" || a.Type != "A" || a.Rcode != "NOERROR" || len(a.Addrs) != 2 {
		t.Fatalf("%+v %v", a, ok)
	}
	if a.Addrs[0].IP != netip.MustParseAddr("10.250.0.7") || a.Addrs[0].TTL != 10*time.Second {
		t.Fatalf("%+v", a.Addrs[0])
	}
}

func TestParseNXDOMAINAndGarbage(t *testing.T) {
	a, ok := Parse(response(t, "nope.example", mdns.TypeAAAA, mdns.RcodeNameError))
	if !ok || a.Rcode != "NXDOMAIN" || a.Type != "AAAA" || len(a.Addrs) != 0 {
		t.Fatalf("%+v %v", a, ok)
	}
	q := new(mdns.Msg)
	q.SetQuestion("x.example.", mdns.TypeA)
	query, _ := q.Pack()
	for _, bad := range [][]byte{nil, []byte("\x16\x03\x01garbage"), query} {
		if a, ok := Parse(bad); ok {
			t.Fatalf("parsed %q as %+v", bad, a)
		}
	}
}

func TestCacheTTLGraceAndNamespaces(t *testing.T) {
	c := NewCache(30*time.Second, 100)
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	ip := netip.MustParseAddr("10.250.0.7")
	c.Learn(1, Answer{Name: "api.twilio.com", Addrs: []Addr{{ip, 10 * time.Second}}})
	if n, ok := c.Name(1, ip); !ok || n != "api.twilio.com" {
		t.Fatalf("%q %v", n, ok)
	}
	if _, ok := c.Name(2, ip); ok {
		t.Fatal("another namespace's resolution leaked")
	}
	now = now.Add(35 * time.Second) // past the TTL, within grace
	if _, ok := c.Name(1, ip); !ok {
		t.Fatal("name gone within the grace period")
	}
	now = now.Add(10 * time.Second)
	if _, ok := c.Name(1, ip); ok || c.Len() != 0 {
		t.Fatal("name kept past TTL + grace")
	}
	// A later answer for the same address names it anew.
	c.Learn(1, Answer{Name: "api.stripe.com", Addrs: []Addr{{ip, time.Minute}}})
	if n, _ := c.Name(1, ip); n != "api.stripe.com" {
		t.Fatalf("%q", n)
	}
}

// A pod resolving thousands of random names cannot grow the cache past
// its bound, and the latest answer is always kept.
func TestCacheIsBounded(t *testing.T) {
	c := NewCache(time.Second, 1000)
	for i := 0; i < 5000; i++ {
		ip := netip.AddrFrom4([4]byte{10, 250, byte(i >> 8), byte(i)})
		c.Learn(1, Answer{Name: fmt.Sprintf("r%d.example", i), Addrs: []Addr{{ip, time.Duration(i) * time.Second}}})
	}
	if c.Len() > 1000 {
		t.Fatalf("%d entries, bound 1000", c.Len())
	}
	last := netip.AddrFrom4([4]byte{10, 250, byte(4999 >> 8), byte(4999 % 256)})
	if n, ok := c.Name(1, last); !ok || n != "r4999.example" {
		t.Fatalf("the newest name was evicted: %q %v", n, ok)
	}
}

func FuzzParse(f *testing.F) {
	m := new(mdns.Msg)
	m.SetQuestion("a.example.", mdns.TypeA)
	m.Response = true
	m.Answer = append(m.Answer, &mdns.A{Hdr: mdns.RR_Header{Name: "a.example.", Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 5}, A: net.IPv4(10, 250, 0, 1)})
	b, _ := m.Pack()
	f.Add(b)
	f.Fuzz(func(t *testing.T, msg []byte) {
		if a, ok := Parse(msg); ok {
			for _, ad := range a.Addrs {
				if !ad.IP.IsValid() {
					t.Fatalf("invalid address from %x", msg)
				}
			}
		}
	})
}
