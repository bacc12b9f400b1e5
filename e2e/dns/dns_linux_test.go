package dns_test

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/stratanet/strata/e2e/dnslab"
	"github.com/stratanet/strata/e2e/harness"
	dnsprobe "github.com/stratanet/strata/probes/dns"
	"github.com/stratanet/strata/probes/tracepoint"
)

const (
	requests = "strata_dns_requests_total"
	duration = "strata_dns_request_duration_seconds"
	conns    = "strata_tcp_connections_total"
)

func query(source, qname, rcode string) labels {
	return labels{"source_namespace": "", "source_workload": source, "qname": qname, "qtype": "A", "rcode": rcode}
}

func timing(source, rcode string) labels {
	return labels{"source_namespace": "", "source_workload": source, "qtype": "A", "rcode": rcode}
}

func connection(source, destination string) labels {
	return labels{"source_workload": source, "destination_workload": destination, "destination_namespace": "",
		"destination_port": "443", "reporter": "client", "result": "success"}
}

func labelsOf(m *dto.Metric) labels {
	l := labels{}
	for _, lp := range m.GetLabel() {
		l[lp.GetName()] = lp.GetValue()
	}
	return l
}

// TestDNS: what clients asked, what they got, how long it took, and the
// names their connections are counted under afterwards.
func TestDNS(t *testing.T) {
	config := filepath.Join(t.TempDir(), "strata.yaml")
	writeFile(t, config, "label_budgets: {qname: 200}\ncidr_names: {\"10.250.209.0/24\": partner-vpn}\n")
	a := startAgent(t, "--config", config, "--dns-timeout=2s", "--sweep-interval=1s")
	w := newWorld(t)

	t.Run("lookups, then connections named after the answer", func(t *testing.T) {
		r := w.resolve(t, "-n", "5", "-connect", "443", "api.twilio.com.")
		if r.OK != 5 || r.Connected != 5 || strings.Join(r.Addrs, ",") != twilioIP {
			t.Fatalf("resolve: %+v", r)
		}
		w.lookup(t, 3, "api.twilio.com.", true)
		a.Expect(t, requests, query(resolver, "api.twilio.com", "NOERROR"), 5, 0)
		a.Expect(t, requests, query(getent, "api.twilio.com", "NOERROR"), 3, 0)
		a.Expect(t, duration, timing(resolver, "NOERROR"), 5, 0)
		a.Expect(t, duration, timing(getent, "NOERROR"), 3, 0)
		a.Expect(t, conns, connection(resolver, "api.twilio.com"), 5, 2*time.Second)
		mode := dnsprobe.ModeTracepoint
		if tracepoint.MissingBTF(tracepoint.SocketHooks...) != "" { // before 6.3: the syscall hooks
			mode = dnsprobe.ModeSyscall
		}
		a.Expect(t, "strata_agent_probe_info", labels{"probe": "dns", "mode": mode}, 1, 0)
		mfs, _ := a.Scrape()
		if s := harness.Series(mfs, conns, labels{"source_workload": resolver, "destination_workload": "world"}); len(s) != 0 {
			t.Fatalf("connections counted as world: %v", labelsOf(s[0]))
		}
		// Answers come within milliseconds here: every one in the first buckets.
		for _, m := range harness.Series(mfs, duration, timing(resolver, "NOERROR")) {
			if sum := m.GetHistogram().GetSampleSum(); sum <= 0 || sum > 0.5 {
				t.Errorf("5 lookups took %vs in all", sum)
			}
		}
	})

	t.Run("a CNAME chain keeps the name asked", func(t *testing.T) {
		r := w.resolve(t, "-n", "2", "-connect", "443", "www.shop.test.")
		if r.OK != 2 || r.Connected != 2 || strings.Join(r.Addrs, ",") != edgeIP {
			t.Fatalf("resolve: %+v", r)
		}
		a.Expect(t, requests, query(resolver, "www.shop.test", "NOERROR"), 2, 0)
		a.Expect(t, conns, connection(resolver, "www.shop.test"), 2, 2*time.Second)
		mfs, _ := a.Scrape()
		if s := harness.Series(mfs, conns, labels{"destination_workload": "edge.cdn.test"}); len(s) != 0 {
			t.Fatalf("counted under the end of the chain: %v", labelsOf(s[0]))
		}
	})

	t.Run("no answer: a configured CIDR name, else world", func(t *testing.T) {
		for _, ip := range []string{"10.250.209.5", "10.250.209.6", "10.250.208.5"} {
			if r := w.resolve(t, "-connect", "443", ip); r.Connected != 1 {
				t.Fatalf("connect %s: %+v", ip, r)
			}
		}
		a.Expect(t, conns, connection(resolver, "partner-vpn"), 2, 0)
		a.Expect(t, conns, connection(resolver, "world"), 1, 2*time.Second)
	})

	t.Run("NXDOMAIN", func(t *testing.T) {
		w.lookup(t, 3, "nope.missing.test.", false)
		a.Expect(t, requests, query(getent, "nope.missing.test", "NXDOMAIN"), 3, 0)
		a.Expect(t, duration, timing(getent, "NXDOMAIN"), 3, 2*time.Second)
	})

	t.Run("search-path expansions fold under their suffix", func(t *testing.T) {
		// A pod's resolv.conf: with ndots:5, glibc tries the search list
		// before the name itself.
		dnslab.Resolver(t, w.client, "nameserver "+dnsIP, "search shop.svc.cluster.local svc.cluster.local cluster.local",
			"options ndots:5 timeout:1 attempts:1")
		defer dnslab.Resolver(t, w.client, "nameserver "+dnsIP, "options timeout:1 attempts:1")
		w.lookup(t, 2, "api.twilio.com", true)
		w.lookup(t, 1, "nope2.missing.test", false)
		for _, s := range []string{"*.shop.svc.cluster.local", "*.svc.cluster.local", "*.cluster.local"} {
			a.Expect(t, requests, query(getent, s, "NXDOMAIN"), 3, 0)
		}
		a.Expect(t, requests, query(getent, "api.twilio.com", "NOERROR"), 5, 0) // 3 before
		a.Expect(t, requests, query(getent, "nope2.missing.test", "NXDOMAIN"), 1, 0)
		// NXDOMAIN: 3 from the subtest before, 9 expansions, nope2's own.
		a.Expect(t, duration, timing(getent, "NXDOMAIN"), 13, 2*time.Second)
		mfs, _ := a.Scrape()
		for _, m := range harness.Series(mfs, requests, labels{"source_workload": getent}) {
			if q := labelsOf(m)["qname"]; strings.HasSuffix(q, ".cluster.local") && !strings.HasPrefix(q, "*.") {
				t.Errorf("an expansion under its own name: %v", labelsOf(m))
			}
		}
	})

	t.Run("unanswered queries time out", func(t *testing.T) {
		dnslab.Resolver(t, w.client, "nameserver "+silentIP, "options timeout:1 attempts:1")
		defer dnslab.Resolver(t, w.client, "nameserver "+dnsIP, "options timeout:1 attempts:1")
		if r := w.resolve(t, "-n", "2", "-allow-fail", "api.twilio.com."); r.Failed != 2 {
			t.Fatalf("resolve: %+v", r)
		}
		// --dns-timeout=2s, plus the second the agent waits for stragglers.
		a.Expect(t, requests, query(resolver, "api.twilio.com", "timeout"), 2, 0)
		a.Expect(t, duration, timing(resolver, "timeout"), 2, 3*time.Second)
		mfs, _ := a.Scrape()
		for _, m := range harness.Series(mfs, duration, timing(resolver, "timeout")) {
			if sum := m.GetHistogram().GetSampleSum(); sum != 4 {
				t.Errorf("two timeouts sum to %vs, want 4 (the timeout each)", sum)
			}
		}
		if v, _ := harness.ValueIn(t, mfs, "strata_agent_dns_pending_queries", nil); v != 0 {
			t.Errorf("%v queries still pending", v)
		}
	})

	t.Run("5000 random names stay within the qname budget", func(t *testing.T) {
		before, err := a.RSS()
		if err != nil {
			t.Fatal(err)
		}
		r := w.resolve(t, "-random", "5000", "-suffix", "flood.test", "-parallel", "8", "-allow-fail")
		if r.Lookups != 5000 || r.Failed != 5000 || strings.Join(r.Errors, ",") != "not found" {
			t.Fatalf("resolve: %+v", r)
		}
		// All 5000 counted: under their own names while the budget lasted,
		// the rest under ~other.
		var mfs map[string]*dto.MetricFamily
		var named, other float64
		eventually(t, 20*time.Second, "5000 NXDOMAIN counted", func() (bool, string) {
			mfs, _ = a.Scrape()
			named, other = 0, 0
			for _, m := range harness.Series(mfs, requests, labels{"source_workload": resolver, "rcode": "NXDOMAIN"}) {
				switch q := labelsOf(m)["qname"]; {
				case q == "~other":
					other += m.GetCounter().GetValue()
				case strings.HasSuffix(q, ".flood.test"):
					named += m.GetCounter().GetValue()
				}
			}
			if named+other == 5000 {
				return true, ""
			}
			// What else the lookups became, and what the agent lost.
			var rest []string
			for _, m := range harness.Series(mfs, requests, labels{"source_workload": resolver}) {
				if l := labelsOf(m); l["rcode"] != "NXDOMAIN" || l["qname"] != "~other" && !strings.HasSuffix(l["qname"], ".flood.test") {
					rest = append(rest, fmt.Sprintf("%v=%v", l, m.GetCounter().GetValue()))
				}
			}
			for _, name := range []string{"strata_agent_dns_records_total", "strata_agent_events_lost_total", "strata_agent_dns_pending_queries"} {
				for _, m := range harness.Series(mfs, name, nil) {
					if v := m.GetCounter().GetValue() + m.GetGauge().GetValue(); v > 0 {
						rest = append(rest, fmt.Sprintf("%s%v=%v", name, labelsOf(m), v))
					}
				}
			}
			return false, fmt.Sprintf("%v named + %v ~other; %s", named, other, strings.Join(rest, " "))
		})
		// At most 200 distinct names in any series, whoever asked them.
		names := map[string]bool{}
		var otherAll float64
		for _, m := range harness.Series(mfs, requests, nil) {
			q := labelsOf(m)["qname"]
			if q == "~other" {
				otherAll += m.GetCounter().GetValue()
			} else {
				names[q] = true
			}
		}
		if len(names) > 200 || other < 4800 {
			t.Fatalf("%d distinct names, %v lookups under ~other", len(names), other)
		}
		// Every lookup folded is one overflow.
		if v, _ := harness.ValueIn(t, mfs, "strata_agent_overflow_total", labels{"label": "qname"}); v != otherAll {
			t.Fatalf("overflow{qname} = %v, want %v (every ~other lookup)", v, otherAll)
		}
		if v, _ := harness.ValueIn(t, mfs, "strata_agent_dns_pending_queries", nil); v != 0 {
			t.Errorf("%v queries still pending", v)
		}
		after, err := a.RSS()
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("agent RSS %d MiB before, %d MiB after 5000 names", before>>20, after>>20)
		if after-before > 32<<20 {
			t.Fatalf("agent RSS grew by %d MiB over 5000 names", (after-before)>>20)
		}
	})
}

// TestDNSOff: --dns=off captures nothing and names nothing; CIDR names
// still apply.
func TestDNSOff(t *testing.T) {
	a := startAgent(t, "--dns=off", "--cidr-names", "10.250.0.0/16=lab-outside")
	w := newWorld(t)
	if r := w.resolve(t, "-n", "2", "-connect", "443", "api.twilio.com."); r.Connected != 2 {
		t.Fatalf("resolve: %+v", r)
	}
	a.Expect(t, conns, connection(resolver, "lab-outside"), 2, 2*time.Second)
	mfs, _ := a.Scrape()
	if len(mfs[requests].GetMetric()) != 0 || len(mfs[duration].GetMetric()) != 0 {
		t.Fatal("DNS series with --dns=off")
	}
	if v, ok := harness.ValueIn(t, mfs, "strata_agent_probe_info", labels{"probe": "dns", "mode": "disabled"}); !ok || v != 1 {
		t.Fatal("probe_info does not say dns is disabled")
	}
}
