package dnsflow

import (
	"fmt"
	"net/netip"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratanet/strata/agent/scrapetest"
	"github.com/stratanet/strata/probes/event"
)

// lockedCollect is Collect as it was before scrapes snapshotted: every
// series built and sent under the table's lock. The oracle the snapshot
// must match exactly.
type lockedCollect struct{ t *Table }

func (lockedCollect) Describe(chan<- *prometheus.Desc) {}

func (l lockedCollect) Collect(ch chan<- prometheus.Metric) {
	t := l.t
	t.mu.Lock()
	defer t.mu.Unlock()
	for k, n := range t.counts {
		ch <- prometheus.MustNewConstMetric(requestsDesc, prometheus.CounterValue, float64(n), k.namespace, k.workload, k.qname, k.qtype, k.rcode)
	}
	for k, h := range t.durations {
		ch <- h.Metric(durationDesc, buckets, k.namespace, k.workload, k.qtype, k.rcode)
	}
	ch <- prometheus.MustNewConstMetric(overflowDesc, prometheus.CounterValue, float64(t.overflow), "qname")
	ch <- prometheus.MustNewConstMetric(seriesDesc, prometheus.GaugeValue, float64(len(t.counts)), "strata_dns_requests_total")
	ch <- prometheus.MustNewConstMetric(seriesDesc, prometheus.GaugeValue, float64(len(t.durations)*(len(buckets)+3)), "strata_dns_request_duration_seconds")
	ch <- prometheus.MustNewConstMetric(pendingDesc, prometheus.GaugeValue, float64(len(t.pending)))
	for outcome, n := range map[string]uint64{"unpaired": t.unpaired, "late": t.late, "malformed": t.malformed, "dropped": t.dropped} {
		ch <- prometheus.MustNewConstMetric(recordsDesc, prometheus.CounterValue, float64(n), outcome)
	}
}

// busyLab has answered, failed, timed-out, unpaired, late, malformed and
// dropped lookups, names beyond the budget and series beyond the cap.
func busyLab(t *testing.T) *lab {
	opts := DefaultOptions()
	opts.QnameBudget, opts.MaxSeries, opts.MaxPending, opts.ExpansionWait = 6, 10, 30, 0
	l := newLab(t, opts)
	rcodes := []int{mdns.RcodeSuccess, mdns.RcodeServerFailure, mdns.RcodeNameError, mdns.RcodeRefused}
	for i := range 40 {
		local := netip.AddrPortFrom(cli.Addr(), uint16(30000+i))
		name := fmt.Sprintf("n%d.example", i%9)
		qtype := []uint16{mdns.TypeA, mdns.TypeAAAA, mdns.TypeMX}[i%3]
		l.query(1, local, fmt.Sprint("c", i%4), uint16(i), name, qtype)
		l.now += uint64(i+1) * 1e5
		if i%7 != 6 { // unanswered: times out
			l.answer(1, local, uint16(i), name, qtype, rcodes[i%4])
		}
	}
	l.answer(1, cli, 999, "nobody.asked", mdns.TypeA, mdns.RcodeSuccess)                             // unpaired
	l.tab.Apply(&event.DNS{Mono: l.now, Netns: 1, Local: cli, Remote: server, Msg: []byte{1, 2, 3}}) // malformed
	l.now += uint64(10 * time.Second)
	l.tab.Tick()
	return l
}

func TestSnapshotExposesExactlyWhatTheLockedCollectDid(t *testing.T) {
	l := busyLab(t)
	tb := l.tab
	if tb.overflow == 0 || tb.unpaired == 0 || tb.malformed == 0 || len(tb.counts) < tb.opts.MaxSeries || len(tb.durations) == 0 {
		t.Fatalf("busyLab lacks a case: overflow %d unpaired %d malformed %d counts %d", tb.overflow, tb.unpaired, tb.malformed, len(tb.counts))
	}
	scrapetest.Same(t, scrapetest.Lines(t, scrapetest.Collect(tb)), scrapetest.Lines(t, scrapetest.Collect(lockedCollect{tb})))
	// Again, with the buffers reused after the table changed.
	l.query(2, cli, "x", 1, "n1.example", mdns.TypeA)
	l.answer(2, cli, 1, "n1.example", mdns.TypeA, mdns.RcodeSuccess)
	scrapetest.Same(t, scrapetest.Lines(t, scrapetest.Collect(tb)), scrapetest.Lines(t, scrapetest.Collect(lockedCollect{tb})))
}

// A scrape holds the table's lock only while it copies: once it is
// sending, the event loop gets the lock at once, whatever the consumer
// does, and the scrape exposes the values of its snapshot.
func TestScrapeSendsWithoutTheLock(t *testing.T) {
	l := busyLab(t)
	before := scrapetest.Lines(t, scrapetest.Collect(lockedCollect{l.tab}))
	ch := make(chan prometheus.Metric) // unbuffered: Collect waits on each send
	go func() { l.tab.Collect(ch); close(ch) }()
	ms := []prometheus.Metric{<-ch} // past its snapshot, parked on a send
	if !l.tab.mu.TryLock() {
		t.Fatal("the table's lock is held while the scrape sends its metrics")
	}
	l.tab.mu.Unlock()
	l.query(3, cli, "during", 77, "n2.example", mdns.TypeA) // the loop goes on meanwhile
	l.answer(3, cli, 77, "n2.example", mdns.TypeA, mdns.RcodeSuccess)
	for m := range ch {
		ms = append(ms, m)
	}
	after := scrapetest.Lines(t, scrapetest.Collect(lockedCollect{l.tab}))
	if fmt.Sprint(after) == fmt.Sprint(before) {
		t.Fatal("the lookup answered during the scrape changed nothing")
	}
	scrapetest.Same(t, scrapetest.Lines(t, ms), before)
}

// Once its buffers have grown to the table's size, the copy made under the
// lock allocates nothing.
func TestSnapshotAllocatesNothingOnceGrown(t *testing.T) {
	tb := busyLab(t).tab
	var s snapshot
	tb.mu.Lock()
	defer tb.mu.Unlock()
	if n := testing.AllocsPerRun(20, func() { tb.snapshot(&s) }); n != 0 {
		t.Fatalf("snapshot allocates %v times a scrape, want 0", n)
	}
	if len(s.counts) != len(tb.counts) || len(s.durations) != len(tb.durations) {
		t.Fatalf("snapshot holds %d and %d series, want %d and %d", len(s.counts), len(s.durations), len(tb.counts), len(tb.durations))
	}
}
