package dnsflow

import (
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/probes/event"
)

// lookup is what a resolver with a search list does for name: each name
// in tries, asked from a new port (as Go's resolver does), answered
// NXDOMAIN but the last, which answers rcode.
func (l *lab) lookup(pid uint32, tries []string, rcode int) {
	for i, name := range tries {
		l.port++
		local := netip.AddrPortFrom(cli.Addr(), l.port)
		m := new(mdns.Msg)
		m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
		m.Id = l.port
		l.tab.Apply(&event.DNS{Mono: l.now, PID: pid, Comm: "app", Netns: 1, Local: local, Remote: server, Msg: pack(l.t, m)})
		l.now += 1e6
		rc := mdns.RcodeNameError
		if i == len(tries)-1 {
			rc = rcode
		}
		l.answer(1, local, l.port, name, mdns.TypeA, rc)
	}
}

// expansions of name under a pod's search list, in the order a resolver
// tries them with ndots:5, then the name itself.
func expansions(name string) []string {
	return []string{name + ".shop.svc.cluster.local", name + ".svc.cluster.local", name + ".cluster.local", name}
}

func TestSearchExpansionsFold(t *testing.T) {
	l := newLab(t, DefaultOptions())
	// The first lookup through the search list teaches its suffixes when
	// the name itself is asked.
	l.lookup(7, expansions("api.twilio.com"), mdns.RcodeSuccess)
	want := map[string]float64{
		requests("app", "*.shop.svc.cluster.local", "A", "NXDOMAIN"): 1,
		requests("app", "*.svc.cluster.local", "A", "NXDOMAIN"):      1,
		requests("app", "*.cluster.local", "A", "NXDOMAIN"):          1,
		requests("app", "api.twilio.com", "A", "NOERROR"):            1,
		duration("app", "A", "NXDOMAIN") + " count":                  3,
		"strata_agent_series{metric=strata_dns_requests_total}":      4,
	}
	expect(t, scrape(t, l.tab), want)
	// Known now: later expansions fold as they come, no wait.
	l.lookup(7, expansions("api.twilio.com"), mdns.RcodeSuccess)
	l.lookup(7, expansions("db.example.org"), mdns.RcodeSuccess)
	want[requests("app", "*.shop.svc.cluster.local", "A", "NXDOMAIN")] = 3
	want[requests("app", "*.svc.cluster.local", "A", "NXDOMAIN")] = 3
	want[requests("app", "*.cluster.local", "A", "NXDOMAIN")] = 3
	want[requests("app", "api.twilio.com", "A", "NOERROR")] = 2
	want[requests("app", "db.example.org", "A", "NOERROR")] = 1
	want[duration("app", "A", "NXDOMAIN")+" count"] = 9
	want["strata_agent_series{metric=strata_dns_requests_total}"] = 5
	expect(t, scrape(t, l.tab), want)
	if l.tab.nheld != 0 || len(l.ev.got) != 0 || len(l.tab.qnames) != 5 {
		t.Fatalf("%d held, %d events, %d names", l.tab.nheld, len(l.ev.got), len(l.tab.qnames))
	}

	// A name that resolves nowhere: its expansions fold, the answer the
	// application gets is counted as it is, with its event, once the wait
	// shows no expansion of it.
	l.lookup(7, expansions("nosuch.example.com"), mdns.RcodeNameError)
	got := scrape(t, l.tab)
	if got[requests("app", "nosuch.example.com", "A", "NXDOMAIN")] != 0 || l.tab.nheld != 1 {
		t.Fatalf("counted before its wait ended (%d held)", l.tab.nheld)
	}
	l.wait()
	want[requests("app", "*.shop.svc.cluster.local", "A", "NXDOMAIN")] = 4
	want[requests("app", "*.svc.cluster.local", "A", "NXDOMAIN")] = 4
	want[requests("app", "*.cluster.local", "A", "NXDOMAIN")] = 4
	want[requests("app", "nosuch.example.com", "A", "NXDOMAIN")] = 1
	want["strata_agent_series{metric=strata_dns_requests_total}"] = 6
	want[duration("app", "A", "NXDOMAIN")+" count"] = 13
	expect(t, scrape(t, l.tab), want)
	if len(l.ev.got) != 1 || !strings.Contains(strings.Join(l.ev.got[0].Fields, " "), "qname nosuch.example.com qtype A rcode NXDOMAIN") {
		t.Fatalf("events %+v", l.ev.got)
	}
}

// A name with ndots dots or more is tried as it is first, then with the
// search suffixes: expansions of a name asked before fold at once.
func TestSearchAfterTheName(t *testing.T) {
	l := newLab(t, DefaultOptions())
	name := "a.b.c.d.e.example"
	l.lookup(7, []string{name, name + ".corp.example"}, mdns.RcodeNameError)
	expect(t, scrape(t, l.tab), map[string]float64{requests("app", "*.corp.example", "A", "NXDOMAIN"): 1})
	if l.tab.nheld != 1 { // the name itself waits
		t.Fatalf("%d held", l.tab.nheld)
	}
	l.wait()
	expect(t, scrape(t, l.tab), map[string]float64{
		requests("app", "*.corp.example", "A", "NXDOMAIN"): 1,
		requests("app", name, "A", "NXDOMAIN"):             1,
	})
	if len(l.ev.got) != 1 {
		t.Fatalf("%d events", len(l.ev.got))
	}
}

// Another process asking for the shorter name teaches nothing: only the
// client's own questions say it searched.
func TestSearchIsPerClient(t *testing.T) {
	l := newLab(t, DefaultOptions())
	l.lookup(8, []string{"x"}, mdns.RcodeSuccess)
	l.lookup(7, []string{"x.corp.example"}, mdns.RcodeNameError)
	l.lookup(9, []string{"x"}, mdns.RcodeSuccess)
	l.wait()
	expect(t, scrape(t, l.tab), map[string]float64{
		requests("app", "x.corp.example", "A", "NXDOMAIN"): 1,
		requests("app", "x", "A", "NOERROR"):               2,
	})
	if len(l.tab.suffixes) != 0 || len(l.ev.got) != 1 {
		t.Fatalf("suffixes %v, %d events", l.tab.suffixes, len(l.ev.got))
	}
}

// A flood of names that never resolve holds at most MaxPending answers;
// beyond, they are counted at once.
func TestSearchHeldBounded(t *testing.T) {
	opts := DefaultOptions()
	opts.MaxPending = 100
	opts.QnameBudget = 10
	l := newLab(t, opts)
	for i := range 300 {
		l.lookup(uint32(i%3), []string{fmt.Sprintf("r%d.flood.test", i)}, mdns.RcodeNameError)
	}
	if l.tab.nheld != 100 {
		t.Fatalf("%d held", l.tab.nheld)
	}
	got := scrape(t, l.tab)
	if n := got[duration("app", "A", "NXDOMAIN")+" count"]; n != 200 {
		t.Fatalf("%v counted at once, want 200", n)
	}
	l.wait()
	expect(t, scrape(t, l.tab), map[string]float64{
		duration("app", "A", "NXDOMAIN") + " count":  300,
		requests("app", flow.Other, "A", "NXDOMAIN"): 290,
		"strata_agent_overflow_total{label=qname}":   290,
		"strata_agent_dns_pending_queries{}":         0,
	})
	if l.tab.nheld != 0 || len(l.tab.held) != 0 || len(l.ev.got) != 300 {
		t.Fatalf("%d held by %d clients, %d events", l.tab.nheld, len(l.tab.held), len(l.ev.got))
	}
	// Questions are forgotten after the timeout.
	l.now += uint64(opts.Timeout)
	l.tab.Tick()
	if len(l.tab.asked) != 0 {
		t.Fatalf("%d clients remembered", len(l.tab.asked))
	}
}

// Names idle for QnameIdle give their budget slot back and their series
// go; names in use keep theirs. Learned suffixes go the same way.
func TestIdleNamesGiveSlotsBack(t *testing.T) {
	opts := DefaultOptions()
	opts.QnameBudget = 2
	opts.QnameIdle = 10 * time.Minute
	l := newLab(t, opts)
	l.lookup(7, []string{"a.example"}, mdns.RcodeSuccess)
	l.lookup(7, []string{"b.example"}, mdns.RcodeSuccess)
	l.now += uint64(5 * time.Minute)
	l.lookup(7, []string{"a.example"}, mdns.RcodeSuccess)
	l.lookup(7, []string{"c.example"}, mdns.RcodeSuccess) // no slot
	l.now += uint64(5*time.Minute + time.Second)          // b idle for 10m1s, a for 5m
	l.tab.Tick()
	got := scrape(t, l.tab)
	if _, ok := got[requests("app", "b.example", "A", "NOERROR")]; ok {
		t.Fatal("b.example's series outlived its slot")
	}
	l.lookup(7, []string{"c.example"}, mdns.RcodeSuccess) // b's slot
	l.lookup(7, []string{"d.example"}, mdns.RcodeSuccess) // none
	got = scrape(t, l.tab)
	expect(t, got, map[string]float64{
		requests("app", "a.example", "A", "NOERROR"):            2,
		requests("app", "c.example", "A", "NOERROR"):            1,
		requests("app", flow.Other, "A", "NOERROR"):             2,
		"strata_agent_overflow_total{label=qname}":              2,
		"strata_agent_series{metric=strata_dns_requests_total}": 3,
	})
	if len(l.tab.qnames) != 2 {
		t.Fatalf("names %v", l.tab.qnames)
	}

	l.lookup(7, expansions("e.example"), mdns.RcodeSuccess)
	if len(l.tab.suffixes) != 3 {
		t.Fatalf("suffixes %v", l.tab.suffixes)
	}
	l.now += uint64(10*time.Minute + time.Second)
	l.tab.Tick()
	// The ~other series (NOERROR, and NXDOMAIN for the expansions, the
	// budget being full) stay.
	if len(l.tab.suffixes) != 0 || len(l.tab.qnames) != 0 || len(l.tab.counts) != 2 {
		t.Fatalf("suffixes %v, names %v, %d series", l.tab.suffixes, l.tab.qnames, len(l.tab.counts))
	}
}
