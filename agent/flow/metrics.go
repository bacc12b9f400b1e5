package flow

import (
	"github.com/prometheus/client_golang/prometheus"
)

func desc(name, help string, extra ...string) *prometheus.Desc {
	return prometheus.NewDesc(name, help, append(append([]string{}, KeyLabels...), extra...), nil)
}

var (
	connectionsDesc = desc("strata_tcp_connections_total", "TCP connection attempts by result.", "result")
	activeDesc      = desc("strata_tcp_active_connections", "TCP connections open now.")
	sentDesc        = desc("strata_tcp_sent_bytes_total", "Payload bytes sent and acknowledged, from the reporter's side.")
	receivedDesc    = desc("strata_tcp_received_bytes_total", "Payload bytes received, from the reporter's side.")
	retransDesc     = desc("strata_tcp_retransmits_total", "Retransmitted TCP segments.")
	resetsDesc      = desc("strata_tcp_resets_total", "TCP resets sent or received.", "direction")
	rttDesc         = desc("strata_tcp_rtt_seconds", "Smoothed RTT of open connections, sampled every sweep and at close.")

	seriesDesc    = prometheus.NewDesc("strata_agent_series", "Series the agent exposes, per metric.", []string{"metric"}, nil)
	overflowDesc  = prometheus.NewDesc("strata_agent_overflow_total", "Label values folded into ~other because a budget was full.", []string{"label"}, nil)
	trackedDesc   = prometheus.NewDesc("strata_agent_tracked_sockets", "Live TCP sockets the flow table follows.", nil, nil)
	untrackedDesc = prometheus.NewDesc("strata_agent_untracked_sockets_total", "Sockets not followed because the socket table was full.", nil, nil)
	staleDesc     = prometheus.NewDesc("strata_agent_stale_sockets_total", "Sockets dropped after vanishing without a close record.", nil, nil)
)

// Describe sends nothing: the table is an unchecked collector whose series
// come and go with traffic.
func (t *Table) Describe(chan<- *prometheus.Desc) {}

// Collect implements prometheus.Collector. The table's lock is held only
// while values are copied into plain structs (no Prometheus objects, no
// allocation once the buffers have grown), copyChunk flows at a time: the event loop waits at most
// for one chunk's copy, never while a scrape builds and sends its metrics.
func (t *Table) Collect(ch chan<- prometheus.Metric) {
	t.scrape.Lock() // one scrape at a time owns the buffers
	defer t.scrape.Unlock()
	s := &t.snap
	s.flows = s.flows[:0]
	for done := false; !done; {
		s.reserve(copyChunk) // outside the lock: it may allocate
		t.mu.Lock()
		done = t.copyFlows(s)
		if done {
			t.copyTotals(s)
		}
		t.mu.Unlock()
	}
	s.emit(ch)
}

// copyChunk bounds the flows copied per hold of the lock, and so the
// loop's wait for a scrape (BenchmarkCopy times one hold).
const copyChunk = 1024

// sample is one flow's values at a scrape.
type sample struct {
	key Key
	stats
}

// snapshot is what a scrape exposes, copied under the table's lock.
type snapshot struct {
	flows            []sample
	next             int      // the next flow of the table's order to copy
	pruneGen         uint64   // the table's prunes when the copy began
	overflow         []uint64 // per budgeted key label (KeyLabels order), then "flows"
	budgeted         []bool   // which KeyLabels have a budget
	tracked          int
	untracked, stale uint64
	series           map[string]int // built by emit, reused
	labels           []string       // a series' label values, reused
}

// reserve makes room for n more flows, their RTT buckets included, so
// that the copy under the lock allocates nothing. The buffers grow to the
// table's size (bounded by the flows budget) and are reused.
func (s *snapshot) reserve(n int) {
	if len(s.flows)+n <= cap(s.flows) {
		return
	}
	grown := make([]sample, len(s.flows), len(s.flows)+max(n, len(s.flows)/4))
	copy(grown, s.flows)
	all := grown[:cap(grown)]
	for i := range all {
		if f := &all[i]; f.rtt.Cap() == 0 {
			f.rtt.Reserve(len(rttBuckets) + 1)
		}
	}
	// The old elements' buckets live on in grown: copy moved their slices.
	s.flows = grown
}

// copyFlows copies the next chunk of flows into s and says whether it
// copied the last. Called with t.mu held. A prune between two chunks
// reorders the flows: the copy starts again.
func (t *Table) copyFlows(s *snapshot) (done bool) {
	if len(s.flows) == 0 || s.pruneGen != t.pruneGen {
		s.flows, s.next, s.pruneGen = s.flows[:0], 0, t.pruneGen
	}
	end := min(s.next+copyChunk, len(t.order))
	for _, f := range t.order[s.next:end] {
		s.flows = s.flows[:len(s.flows)+1]
		d := &s.flows[len(s.flows)-1]
		d.key = f.key
		rtt := d.rtt // keep the copy's own buckets
		d.stats = *f.stats
		d.rtt = rtt
		f.stats.rtt.CopyTo(&d.rtt)
	}
	s.next = end
	return end == len(t.order)
}

// copyTotals copies the table-wide values. Called with t.mu held.
func (t *Table) copyTotals(s *snapshot) {
	s.overflow, s.budgeted = s.overflow[:0], s.budgeted[:0]
	for _, label := range KeyLabels {
		_, ok := t.gov.budgets.Labels[label]
		s.budgeted = append(s.budgeted, ok)
		s.overflow = append(s.overflow, t.gov.overflow[label])
	}
	s.overflow = append(s.overflow, t.gov.overflow["flows"])
	s.tracked, s.untracked, s.stale = len(t.conns), t.untracked, t.stale
}

// emit sends the snapshot's metrics: the work of a scrape, lock-free.
func (s *snapshot) emit(ch chan<- prometheus.Metric) {
	if s.series == nil {
		s.series = map[string]int{}
	}
	clear(s.series)
	series := s.series
	send := func(name string, m prometheus.Metric, n int) {
		series[name] += n
		ch <- m
	}
	counter := func(d *prometheus.Desc, name string, v uint64, labels ...string) {
		send(name, prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...), 1)
	}
	// Label values are copied into each metric: one slice serves them all.
	lv := s.labels[:0]
	if cap(lv) < len(KeyLabels)+1 {
		lv = make([]string, 0, len(KeyLabels)+1)
	}
	for i := range s.flows {
		f := &s.flows[i]
		k := &f.key
		lv = append(lv[:0], k.SourceNamespace, k.SourceWorkload, k.DestinationNamespace,
			k.DestinationWorkload, k.DestinationService, k.DestinationPort, k.Reporter)
		key := lv[:len(KeyLabels)]
		with := func(extra string) []string { return append(key, extra) } // in lv's spare slot
		for r, n := range f.connections {
			if n > 0 {
				counter(connectionsDesc, "strata_tcp_connections_total", n, with(resultNames[r])...)
			}
		}
		send("strata_tcp_active_connections", prometheus.MustNewConstMetric(activeDesc, prometheus.GaugeValue, float64(f.active), key...), 1)
		counter(sentDesc, "strata_tcp_sent_bytes_total", f.sent, key...)
		counter(receivedDesc, "strata_tcp_received_bytes_total", f.received, key...)
		counter(retransDesc, "strata_tcp_retransmits_total", f.retransmits, key...)
		if f.resetsSent > 0 {
			counter(resetsDesc, "strata_tcp_resets_total", f.resetsSent, with("sent")...)
		}
		if f.resetsReceived > 0 {
			counter(resetsDesc, "strata_tcp_resets_total", f.resetsReceived, with("received")...)
		}
		if f.rtt.Count() > 0 {
			send("strata_tcp_rtt_seconds", f.rtt.Metric(rttDesc, rttBuckets, key...), len(rttBuckets)+3)
		}
		lv = key
	}
	s.labels = lv
	// Every budgeted label from the start, at 0 until it folds: a series
	// born at its first fold would hide that fold from rate() and increase(),
	// and a budget hit once (a burst of new names) would never show.
	// Only the identity labels: label_budgets also holds qname, which the
	// DNS table counts and exposes.
	for i, label := range KeyLabels {
		if s.budgeted[i] {
			ch <- prometheus.MustNewConstMetric(overflowDesc, prometheus.CounterValue, float64(s.overflow[i]), label)
		}
	}
	ch <- prometheus.MustNewConstMetric(overflowDesc, prometheus.CounterValue, float64(s.overflow[len(KeyLabels)]), "flows")
	for name, n := range series {
		ch <- prometheus.MustNewConstMetric(seriesDesc, prometheus.GaugeValue, float64(n), name)
	}
	ch <- prometheus.MustNewConstMetric(trackedDesc, prometheus.GaugeValue, float64(s.tracked))
	ch <- prometheus.MustNewConstMetric(untrackedDesc, prometheus.CounterValue, float64(s.untracked))
	ch <- prometheus.MustNewConstMetric(staleDesc, prometheus.CounterValue, float64(s.stale))
}
