package dns

import (
	"net/netip"
	"testing"

	mdns "github.com/miekg/dns"
)

func TestParseQuery(t *testing.T) {
	m := new(mdns.Msg)
	m.SetQuestion("API.Twilio.com.", mdns.TypeAAAA)
	m.Id = 0xbeef
	m.SetEdns0(1232, false) // Go's resolver and others add an OPT record
	b, _ := m.Pack()
	q, ok := ParseQuery(b)
	if !ok || q != (Query{ID: 0xbeef, Name: "api.twilio.com", Type: "AAAA"}) {
		t.Fatalf("%+v %v", q, ok)
	}
	m.SetQuestion("x.example.", 65000)
	b, _ = m.Pack()
	if q, ok := ParseQuery(b); !ok || q.Type != "TYPE65000" {
		t.Fatalf("%+v %v", q, ok)
	}
	// A response, garbage, a question cut short: no query.
	r := response(t, "api.twilio.com", mdns.TypeA, mdns.RcodeSuccess)
	for _, bad := range [][]byte{r, []byte("GET / HTTP/1.1\r\n\r\n"), b[:15]} {
		if q, ok := ParseQuery(bad); ok {
			t.Errorf("%q parsed as %+v", bad, q)
		}
	}
}

// The probes keep a message's first 512 bytes: the whole answers in them
// still count, and the id and rcode are there.
func TestParseCutMessage(t *testing.T) {
	var rrs []string
	for i := 0; i < 40; i++ {
		rrs = append(rrs, "big.example. 60 IN A 10.250.3."+string(rune('0'+i%10)))
	}
	msg := response(t, "big.example", mdns.TypeA, mdns.RcodeSuccess, rrs...)
	if len(msg) <= 512 {
		t.Fatalf("message of %d bytes is not long enough to cut", len(msg))
	}
	a, ok := Parse(msg[:512])
	// 12 header + 17 question; each answer 27 bytes (13 of name, uncompressed).
	if !ok || a.Name != "big.example" || a.Rcode != "NOERROR" || len(a.Addrs) != (512-12-17)/27 {
		t.Fatalf("%d addresses, %+v %v", len(a.Addrs), a, ok)
	}
	if a.Addrs[0].IP != netip.MustParseAddr("10.250.3.0") {
		t.Fatalf("%v", a.Addrs[0])
	}
	full, _ := Parse(msg)
	if full.ID != a.ID || len(full.Addrs) != 40 {
		t.Fatalf("full: %+v", full)
	}
	// Cut inside the question: nothing.
	if _, ok := Parse(msg[:20]); ok {
		t.Fatal("parsed a message cut in its question")
	}
}

func TestParseID(t *testing.T) {
	q := new(mdns.Msg)
	q.SetQuestion("a.example.", mdns.TypeA)
	q.Id = 4242
	m := new(mdns.Msg)
	m.SetRcode(q, mdns.RcodeServerFailure)
	b, _ := m.Pack()
	a, ok := Parse(b)
	if !ok || a.ID != 4242 || a.Rcode != "SERVFAIL" {
		t.Fatalf("%+v %v", a, ok)
	}
}
