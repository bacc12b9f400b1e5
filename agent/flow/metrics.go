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

// Collect implements prometheus.Collector.
func (t *Table) Collect(ch chan<- prometheus.Metric) {
	t.mu.Lock()
	defer t.mu.Unlock()

	series := map[string]int{}
	emit := func(name string, m prometheus.Metric, n int) {
		series[name] += n
		ch <- m
	}
	counter := func(d *prometheus.Desc, name string, v uint64, labels ...string) {
		emit(name, prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...), 1)
	}
	for k, s := range t.flows {
		lv := k.Values()
		with := func(extra string) []string { return append(append([]string{}, lv...), extra) }
		for r, n := range s.connections {
			if n > 0 {
				counter(connectionsDesc, "strata_tcp_connections_total", n, with(resultNames[r])...)
			}
		}
		emit("strata_tcp_active_connections", prometheus.MustNewConstMetric(activeDesc, prometheus.GaugeValue, float64(s.active), lv...), 1)
		counter(sentDesc, "strata_tcp_sent_bytes_total", s.sent, lv...)
		counter(receivedDesc, "strata_tcp_received_bytes_total", s.received, lv...)
		counter(retransDesc, "strata_tcp_retransmits_total", s.retransmits, lv...)
		if s.resetsSent > 0 {
			counter(resetsDesc, "strata_tcp_resets_total", s.resetsSent, with("sent")...)
		}
		if s.resetsReceived > 0 {
			counter(resetsDesc, "strata_tcp_resets_total", s.resetsReceived, with("received")...)
		}
		if s.rtt.Count() > 0 {
			emit("strata_tcp_rtt_seconds", s.rtt.Metric(rttDesc, rttBuckets, lv...), len(rttBuckets)+3)
		}
	}
	// Every budgeted label from the start, at 0 until it folds: a series
	// born at its first fold would hide that fold from rate() and increase(),
	// and a budget hit once (a burst of new names) would never show.
	// Only the identity labels: label_budgets also holds qname, which the
	// DNS table counts and exposes.
	for _, label := range KeyLabels {
		if _, ok := t.gov.budgets.Labels[label]; ok {
			ch <- prometheus.MustNewConstMetric(overflowDesc, prometheus.CounterValue, float64(t.gov.overflow[label]), label)
		}
	}
	ch <- prometheus.MustNewConstMetric(overflowDesc, prometheus.CounterValue, float64(t.gov.overflow["flows"]), "flows")
	for name, n := range series {
		ch <- prometheus.MustNewConstMetric(seriesDesc, prometheus.GaugeValue, float64(n), name)
	}
	ch <- prometheus.MustNewConstMetric(trackedDesc, prometheus.GaugeValue, float64(len(t.conns)))
	ch <- prometheus.MustNewConstMetric(untrackedDesc, prometheus.CounterValue, float64(t.untracked))
	ch <- prometheus.MustNewConstMetric(staleDesc, prometheus.CounterValue, float64(t.stale))
}
