package dnsflow

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"go.uber.org/zap"

	"github.com/stratanet/strata/agent/emit"
	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/identity"
	dnsid "github.com/stratanet/strata/identity/dns"
	"github.com/stratanet/strata/probes/event"
)

// byComm names a client after its process, as standalone identity does;
// with wait set, it names nobody until told (a pod not reported yet).
type byComm struct {
	asked   []event.TCP
	wait    bool
	named   *flow.Key // once set, what waits is named so
	waiting int       // Settle calls
	gone    bool      // the client's pod is gone: named by its process
}

func (b *byComm) Name(e *event.TCP, w *flow.Wait) (flow.Key, bool) {
	b.asked = append(b.asked, *e)
	if b.wait && w != nil {
		return flow.Key{}, false
	}
	wl := e.Comm
	if b.gone {
		wl = "process:" + wl
	}
	return flow.Key{SourceWorkload: wl, DestinationWorkload: "world", DestinationPort: "53", Reporter: "client"}, true
}

func (b *byComm) Settle(*flow.Wait) (flow.Key, bool) {
	b.waiting++
	if b.named == nil {
		return flow.Key{}, false
	}
	return *b.named, true
}

type events struct{ got []emit.Event }

func (e *events) Push(ev emit.Event) bool { e.got = append(e.got, ev); return true }

// lab is a table with a clock the test moves (kernel ns).
type lab struct {
	t     *testing.T
	tab   *Table
	now   uint64
	cache *dnsid.Cache
	ev    *events
	names *byComm
	port  uint16 // the last client port lookup used
}

func newLab(t *testing.T, opts Options) *lab {
	l := &lab{t: t, now: 1e9, port: 50000, cache: dnsid.NewCache(time.Minute, 1000), ev: &events{}, names: &byComm{}}
	l.tab = New(l.names, l.cache, opts, func() uint64 { return l.now }, func(m uint64) time.Time { return time.Unix(0, int64(m)) })
	l.tab.Events = l.ev
	return l
}

var (
	server = netip.MustParseAddrPort("10.250.0.53:53")
	cli    = netip.MustParseAddrPort("10.244.0.2:40000")
)

func pack(t *testing.T, m *mdns.Msg) []byte {
	t.Helper()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// query sends a query from comm at local in netns.
func (l *lab) query(netns uint32, local netip.AddrPort, comm string, id uint16, name string, qtype uint16) {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), qtype)
	m.Id = id
	l.tab.Apply(&event.DNS{Mono: l.now, PID: 7, Comm: comm, Netns: netns, Local: local, Remote: server, Msg: pack(l.t, m)})
}

// answer receives the response to that query, with rcode and A records.
func (l *lab) answer(netns uint32, local netip.AddrPort, id uint16, name string, qtype uint16, rcode int, rrs ...string) {
	q := new(mdns.Msg)
	q.SetQuestion(mdns.Fqdn(name), qtype)
	q.Id = id
	m := new(mdns.Msg)
	m.SetRcode(q, rcode)
	for _, s := range rrs {
		rr, err := mdns.NewRR(s)
		if err != nil {
			l.t.Fatal(err)
		}
		m.Answer = append(m.Answer, rr)
	}
	l.tab.Apply(&event.DNS{Mono: l.now, Netns: netns, Local: local, Remote: server, Response: true, Msg: pack(l.t, m)})
}

// wait lets an NXDOMAIN answer's wait for a search expansion pass.
func (l *lab) wait() {
	l.now += uint64(time.Second + deliverySlack) // past an expansion's wait
	l.tab.Tick()
}

// scrape is every series as "name{labels} value" (histograms: count and sum).
func scrape(t *testing.T, c prometheus.Collector) map[string]float64 {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var ls []string
			for _, lp := range m.GetLabel() {
				ls = append(ls, lp.GetName()+"="+lp.GetValue())
			}
			sort.Strings(ls)
			name := mf.GetName() + "{" + strings.Join(ls, ",") + "}"
			switch mf.GetType() {
			case dto.MetricType_HISTOGRAM:
				out[name+" count"] = float64(m.GetHistogram().GetSampleCount())
				out[name+" sum"] = m.GetHistogram().GetSampleSum()
			case dto.MetricType_COUNTER:
				out[name] = m.GetCounter().GetValue()
			default:
				out[name] = m.GetGauge().GetValue()
			}
		}
	}
	return out
}

func expect(t *testing.T, got map[string]float64, want map[string]float64) {
	t.Helper()
	for k, v := range want {
		if g, ok := got[k]; !ok || g != v {
			t.Errorf("%s = %v (present %v), want %v", k, g, ok, v)
		}
	}
}

func requests(wl, qname, qtype, rcode string) string {
	return fmt.Sprintf("strata_dns_requests_total{qname=%s,qtype=%s,rcode=%s,source_namespace=,source_workload=%s}", qname, qtype, rcode, wl)
}

func duration(wl, qtype, rcode string) string {
	return fmt.Sprintf("strata_dns_request_duration_seconds{qtype=%s,rcode=%s,source_namespace=,source_workload=%s}", qtype, rcode, wl)
}

func TestPairsAndLearns(t *testing.T) {
	l := newLab(t, DefaultOptions())
	l.query(1, cli, "curl", 10, "API.Twilio.com", mdns.TypeA)
	l.now += 3e6 // 3 ms
	l.answer(1, cli, 10, "api.twilio.com", mdns.TypeA, mdns.RcodeSuccess,
		"api.twilio.com. 30 IN CNAME edge.cdn.example.", "edge.cdn.example. 10 IN A 10.250.1.10")
	got := scrape(t, l.tab)
	expect(t, got, map[string]float64{
		requests("curl", "api.twilio.com", "A", "NOERROR"):      1,
		duration("curl", "A", "NOERROR") + " count":             1,
		duration("curl", "A", "NOERROR") + " sum":               0.003,
		"strata_agent_dns_pending_queries{}":                    0,
		"strata_agent_dns_records_total{outcome=unpaired}":      0,
		"strata_agent_overflow_total{label=qname}":              0,
		"strata_agent_series{metric=strata_dns_requests_total}": 1,
	})
	if n, ok := l.cache.Name(1, netip.MustParseAddr("10.250.1.10")); !ok || n != "api.twilio.com" {
		t.Fatalf("cache: %q %v", n, ok)
	}
	if _, ok := l.cache.Name(2, netip.MustParseAddr("10.250.1.10")); ok {
		t.Fatal("learned for another namespace")
	}
	if len(l.ev.got) != 0 {
		t.Fatalf("events for a success: %+v", l.ev.got)
	}
	// The source was named as a client socket to the server.
	if a := l.names.asked[0]; a.Kind != event.Connect || a.Comm != "curl" || a.Local != cli || a.Remote != server || a.Netns != 1 {
		t.Fatalf("named %+v", a)
	}
}

// Queries are told apart by namespace, client address and port, transport
// and id: the same id and port in two namespaces are two queries.
func TestPairingKeys(t *testing.T) {
	l := newLab(t, DefaultOptions())
	other := netip.MustParseAddrPort("10.244.0.2:40001")
	l.query(1, cli, "a", 5, "x.example", mdns.TypeA)
	l.query(2, cli, "b", 5, "x.example", mdns.TypeA)
	l.query(1, other, "c", 5, "x.example", mdns.TypeA)
	l.now += 1e6
	l.answer(2, cli, 5, "x.example", mdns.TypeA, mdns.RcodeNameError)
	l.answer(1, cli, 6, "x.example", mdns.TypeA, mdns.RcodeSuccess)      // wrong id
	l.answer(1, other, 5, "y.example", mdns.TypeA, mdns.RcodeSuccess)    // wrong question
	l.answer(1, other, 5, "x.example", mdns.TypeAAAA, mdns.RcodeSuccess) // wrong type
	l.now += 1e6
	l.answer(1, cli, 5, "x.example", mdns.TypeA, mdns.RcodeServerFailure)
	l.answer(1, cli, 5, "x.example", mdns.TypeA, mdns.RcodeServerFailure) // a duplicate
	l.wait()                                                              // b's NXDOMAIN was no search expansion
	got := scrape(t, l.tab)
	expect(t, got, map[string]float64{
		requests("a", "x.example", "A", "SERVFAIL"):        1,
		requests("b", "x.example", "A", "NXDOMAIN"):        1,
		duration("a", "A", "SERVFAIL") + " sum":            0.002,
		duration("b", "A", "NXDOMAIN") + " sum":            0.001,
		"strata_agent_dns_pending_queries{}":               1, // c's
		"strata_agent_dns_records_total{outcome=unpaired}": 4,
	})
	if len(got) != 2+4+1+2+1+4 { // 2 counters, 2 histograms (count+sum), overflow, 2 series gauges, pending, 4 outcomes
		t.Errorf("%d series: %v", len(got), got)
	}
}

// A query sent again with its id (a retry on the same socket) is timed
// from the first.
func TestRetrySameID(t *testing.T) {
	l := newLab(t, DefaultOptions())
	l.query(1, cli, "a", 5, "x.example", mdns.TypeA)
	l.now += 1e9
	l.query(1, cli, "a", 5, "x.example", mdns.TypeA)
	l.now += 1e9
	l.answer(1, cli, 5, "x.example", mdns.TypeA, mdns.RcodeSuccess)
	expect(t, scrape(t, l.tab), map[string]float64{
		requests("a", "x.example", "A", "NOERROR"): 1,
		duration("a", "A", "NOERROR") + " sum":     2,
	})
}

func TestTimeout(t *testing.T) {
	l := newLab(t, DefaultOptions())
	start := l.now
	l.query(1, cli, "curl", 1, "slow.example", mdns.TypeA)
	l.query(1, cli, "curl", 2, "late.example", mdns.TypeA)
	l.query(1, cli, "curl", 3, "gone.example", mdns.TypeA)
	l.now += uint64(5*time.Second + deliverySlack) // not past the slack yet
	l.tab.Tick()
	if l.tab.Pending() != 3 {
		t.Fatalf("%d pending before the timeout and slack passed", l.tab.Pending())
	}
	// Made after the timeout, read before the tick: too late all the same.
	l.answer(1, cli, 2, "late.example", mdns.TypeA, mdns.RcodeSuccess)
	l.now++
	l.tab.Tick()
	if l.tab.Pending() != 0 {
		t.Fatalf("%d pending after the timeout", l.tab.Pending())
	}
	// An answer after the tick ended its query pairs with nothing.
	l.answer(1, cli, 3, "gone.example", mdns.TypeA, mdns.RcodeSuccess)
	expect(t, scrape(t, l.tab), map[string]float64{
		requests("curl", "slow.example", "A", "timeout"):   1,
		requests("curl", "late.example", "A", "timeout"):   1,
		requests("curl", "gone.example", "A", "timeout"):   1,
		duration("curl", "A", "timeout") + " count":        3,
		duration("curl", "A", "timeout") + " sum":          15,
		"strata_agent_dns_records_total{outcome=late}":     1,
		"strata_agent_dns_records_total{outcome=unpaired}": 1,
	})
	if len(l.ev.got) != 3 {
		t.Fatalf("%d events", len(l.ev.got))
	}
	for _, e := range l.ev.got {
		line := strings.Join(e.Fields, " ")
		if e.Kind != emit.DNSError || e.Namespace != "" || !strings.Contains(line, "rcode timeout") ||
			!strings.Contains(line, "error no response within 5s") || !strings.Contains(line, "duration 5.000000") ||
			!e.Time.Equal(time.Unix(0, int64(start+5e9))) {
			t.Errorf("event %+v", e)
		}
	}
}

func TestErrorEvents(t *testing.T) {
	l := newLab(t, DefaultOptions())
	for i, rc := range []int{mdns.RcodeNameError, mdns.RcodeServerFailure, mdns.RcodeRefused, mdns.RcodeSuccess} {
		l.query(1, cli, "getent", uint16(i), "nope.missing.test", mdns.TypeA)
		l.now += 2e6
		l.answer(1, cli, uint16(i), "nope.missing.test", mdns.TypeA, rc)
	}
	l.wait() // the NXDOMAIN comes last: it waited to be told no search expansion
	var got []string
	for _, e := range l.ev.got {
		got = append(got, strings.Join(e.Fields, " "))
	}
	want := []string{
		"source_workload getent source_addr 10.244.0.2:40000 destination_addr 10.250.0.53:53 qname nope.missing.test qtype A rcode SERVFAIL duration 0.002000",
		"source_workload getent source_addr 10.244.0.2:40000 destination_addr 10.250.0.53:53 qname nope.missing.test qtype A rcode REFUSED duration 0.002000",
		"source_workload getent source_addr 10.244.0.2:40000 destination_addr 10.250.0.53:53 qname nope.missing.test qtype A rcode NXDOMAIN duration 0.002000",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("events:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Events name the source and carry the real name even when the metric folds it.
	l2 := newLab(t, Options{Timeout: 5 * time.Second, QnameBudget: 1, MaxSeries: 100, MaxPending: 100})
	l2.query(1, cli, "a", 1, "first.example", mdns.TypeA)
	l2.answer(1, cli, 1, "first.example", mdns.TypeA, mdns.RcodeSuccess)
	l2.query(1, cli, "a", 2, "second.example", mdns.TypeA)
	l2.answer(1, cli, 2, "second.example", mdns.TypeA, mdns.RcodeNameError)
	if len(l2.ev.got) != 1 || !strings.Contains(strings.Join(l2.ev.got[0].Fields, " "), "qname second.example") {
		t.Fatalf("%+v", l2.ev.got)
	}
}

// A client asking for 5000 random names cannot grow the series, the name
// set or the pending queries past their bounds; the overflow is counted.
func TestBudgets(t *testing.T) {
	l := newLab(t, Options{Timeout: 5 * time.Second, QnameBudget: 100, MaxSeries: 20000, MaxPending: 1000})
	for i := 0; i < 5000; i++ {
		name := fmt.Sprintf("r%d.flood.test", i)
		l.query(1, cli, "flood", uint16(i), name, mdns.TypeA)
		l.answer(1, cli, uint16(i), name, mdns.TypeA, mdns.RcodeNameError)
	}
	got := scrape(t, l.tab)
	expect(t, got, map[string]float64{
		requests("flood", flow.Other, "A", "NXDOMAIN"):          4900,
		requests("flood", "r0.flood.test", "A", "NXDOMAIN"):     1,
		requests("flood", "r99.flood.test", "A", "NXDOMAIN"):    1,
		duration("flood", "A", "NXDOMAIN") + " count":           5000,
		"strata_agent_overflow_total{label=qname}":              4900,
		"strata_agent_series{metric=strata_dns_requests_total}": 101,
	})
	if len(l.tab.qnames) != 100 || len(l.tab.counts) != 101 {
		t.Fatalf("%d names, %d series", len(l.tab.qnames), len(l.tab.counts))
	}
	// Names already seen keep their series.
	l.query(1, cli, "flood", 1, "r5.flood.test", mdns.TypeA)
	l.answer(1, cli, 1, "r5.flood.test", mdns.TypeA, mdns.RcodeNameError)
	expect(t, scrape(t, l.tab), map[string]float64{requests("flood", "r5.flood.test", "A", "NXDOMAIN"): 2})

	// Unanswered: the pending queries stop at their bound.
	for i := 0; i < 1500; i++ {
		l.query(1, netip.AddrPortFrom(cli.Addr(), uint16(1000+i)), "flood", 7, "x.flood.test", mdns.TypeA)
	}
	expect(t, scrape(t, l.tab), map[string]float64{
		"strata_agent_dns_pending_queries{}":              1000,
		"strata_agent_dns_records_total{outcome=dropped}": 500,
	})
	l.now += uint64(10 * time.Second)
	l.tab.Tick()
	expect(t, scrape(t, l.tab), map[string]float64{
		"strata_agent_dns_pending_queries{}":          0,
		requests("flood", flow.Other, "A", "timeout"): 1000,
	})
}

// When the series are full, a new name folds into its source's ~other
// series if that exists, else into the all-~other one; question types
// outside the common ones are one value.
func TestSeriesCapAndTypes(t *testing.T) {
	l := newLab(t, Options{Timeout: 5 * time.Second, QnameBudget: 1000, MaxSeries: 3, MaxPending: 100})
	l.tab.counts[countKey{"", "a", flow.Other, "A", "NOERROR"}] = 0 // a's ~other exists
	for i, c := range []struct {
		comm, name string
		qtype      uint16
	}{
		{"a", "one.example", mdns.TypeA}, {"a", "two.example", mdns.TypeA}, // full after these
		{"a", "three.example", mdns.TypeA}, {"b", "four.example", mdns.TypeA}, {"c", "five.example", 65000},
		{"a", "one.example", mdns.TypeA},
	} {
		l.query(1, cli, c.comm, uint16(i), c.name, c.qtype)
		l.answer(1, cli, uint16(i), c.name, c.qtype, mdns.RcodeSuccess)
	}
	got := scrape(t, l.tab)
	expect(t, got, map[string]float64{
		requests("a", "one.example", "A", "NOERROR"): 2,
		requests("a", "two.example", "A", "NOERROR"): 1,
		requests("a", flow.Other, "A", "NOERROR"):    1, // three
		"strata_dns_requests_total{qname=~other,qtype=A,rcode=NOERROR,source_namespace=~other,source_workload=~other}":      1, // four
		"strata_dns_requests_total{qname=~other,qtype=~other,rcode=NOERROR,source_namespace=~other,source_workload=~other}": 1, // five
	})
	if n := len(l.tab.counts); n != 5 {
		t.Fatalf("%d series", n)
	}
}

func TestMalformed(t *testing.T) {
	l := newLab(t, DefaultOptions())
	l.tab.Apply(&event.DNS{Netns: 1, Local: cli, Remote: server, Msg: []byte("GET / HTTP/1.1\r\n")})
	l.tab.Apply(&event.DNS{Netns: 1, Local: cli, Remote: server, Response: true, Msg: []byte{1, 2, 3}})
	expect(t, scrape(t, l.tab), map[string]float64{"strata_agent_dns_records_total{outcome=malformed}": 2})
}

// A lookup from a client not named yet (a pod whose address the API server
// has not reported) is counted once its name comes, under that name.
func TestCountedOnceNamed(t *testing.T) {
	l := newLab(t, DefaultOptions())
	l.names.wait = true
	l.query(1, cli, "curl", 10, "api.twilio.com", mdns.TypeA)
	l.now += 2e6
	l.answer(1, cli, 10, "api.twilio.com", mdns.TypeA, mdns.RcodeNameError)
	l.wait()
	if got := scrape(t, l.tab)[requests("frontend", "api.twilio.com", "A", "NXDOMAIN")]; got != 0 || len(l.ev.got) != 0 {
		t.Fatalf("counted (%v) or reported (%d events) before the client was named", got, len(l.ev.got))
	}
	if n := l.tab.unnamed.Len(); n != 1 {
		t.Fatalf("%d lookups waiting, want 1", n)
	}
	l.names.named = &flow.Key{SourceNamespace: "shop", SourceWorkload: "frontend"}
	l.wait()
	if n := l.tab.unnamed.Len(); n != 0 || l.names.waiting != 1 {
		t.Fatalf("%d lookups waiting after the name came (asked %d times), want 0 (1: the NXDOMAIN waited a tick for a search expansion first)", n, l.names.waiting)
	}
	got := scrape(t, l.tab)
	expect(t, got, map[string]float64{
		"strata_dns_requests_total{qname=api.twilio.com,qtype=A,rcode=NXDOMAIN,source_namespace=shop,source_workload=frontend}": 1,
		"strata_dns_request_duration_seconds{qtype=A,rcode=NXDOMAIN,source_namespace=shop,source_workload=frontend} count":      1,
	})
	if len(l.ev.got) != 1 || l.ev.got[0].Namespace != "shop" {
		t.Errorf("dns_error events: %+v", l.ev.got)
	}
}

// A lookup is named as it is asked: a client gone by the time its query
// times out (a pod that exited) still counts under its own name.
func TestNamedWhenAsked(t *testing.T) {
	l := newLab(t, DefaultOptions())
	l.query(1, cli, "curl", 1, "gone.example", mdns.TypeA)
	l.names.gone = true
	l.now += uint64(5*time.Second+deliverySlack) + 1
	l.tab.Tick()
	expect(t, scrape(t, l.tab), map[string]float64{
		requests("curl", "gone.example", "A", "timeout"): 1,
	})
	if got := scrape(t, l.tab)[requests("process:curl", "gone.example", "A", "timeout")]; got != 0 {
		t.Errorf("counted under the process: %v", got)
	}
	if len(l.ev.got) != 1 || !strings.Contains(strings.Join(l.ev.got[0].Fields, " "), "source_workload curl") {
		t.Errorf("events: %+v", l.ev.got)
	}
}

// podID names the client its pod while alive (the process once it is
// gone) and leaves the server pending: a private address that may be a pod
// not reported yet, as a test's simulated outside DNS server is.
type podID struct{ gone, settled bool }

func (*podID) Observe(*event.TCP) {}
func (*podID) Forget(uint64)      {}
func (p *podID) Identify(e *event.TCP) identity.Pair {
	src := identity.Workload{Namespace: "shop", Name: "checkout"}
	if p.gone {
		src = identity.Workload{Name: e.Comm}
	}
	return identity.Pair{Source: src, Destination: identity.Workload{Name: identity.Unknown}, Port: 53, Reporter: identity.Client, Pending: true}
}

// Retry keeps what was named, as identifiers do; the server stays
// unknown, for good once settled (as when the late window ends).
func (p *podID) Retry(old identity.Pair, e *event.TCP) identity.Pair {
	old.Pending = !p.settled
	return old
}

// A lookup to a server not named yet, timing out after its pod is gone,
// still counts under the pod: the ends named as it asked are kept while
// the rest waits (the flow table's late naming, for real).
func TestTimeoutAfterThePodWentWaitsWithItsName(t *testing.T) {
	id := &podID{}
	opts := flow.DefaultOptions()
	opts.LateWindow = 3 * time.Second
	l := newLab(t, DefaultOptions())
	l.tab.names = flow.NewTable(zap.NewNop(), id, flow.DefaultOptions())
	l.query(1, cli, "dnsquery", 1, "gone.example", mdns.TypeA)
	id.gone = true
	for range 7 { // past the timeout: waiting for the server's name
		l.now += uint64(time.Second)
		l.tab.Tick()
	}
	if l.tab.unnamed.Len() != 1 {
		t.Fatalf("%d lookups waiting, want 1", l.tab.unnamed.Len())
	}
	id.settled = true
	l.tab.Tick()
	got := scrape(t, l.tab)
	expect(t, got, map[string]float64{
		"strata_dns_requests_total{qname=gone.example,qtype=A,rcode=timeout,source_namespace=shop,source_workload=checkout}": 1,
	})
	if v := got[requests("dnsquery", "gone.example", "A", "timeout")]; v != 0 {
		t.Errorf("counted under the process: %v", v)
	}
}
