package agent

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stratanet/strata/exporters/export"
	"github.com/stratanet/strata/probes/event"
)

// probeNames lists the probes; probeIndex maps each record to its probe.
var probeNames = []string{"tcp_state", "tcp_sweep", "tcp_retransmit", "tcp_reset", "http", "dns"}

func probeIndex(r *event.Record) int {
	if r.IsHTTP {
		return 4
	}
	if r.IsDNS {
		return 5
	}
	switch r.TCP.Kind {
	case event.Snapshot, event.SweepEnd:
		return 1
	case event.Retransmit:
		return 2
	case event.ResetSent, event.ResetReceived:
		return 3
	}
	return 0
}

func probeOf(r *event.Record) string { return probeNames[probeIndex(r)] }

// health is the agent's view of itself: what each probe runs as, what it
// delivered and what was lost where.
type health struct {
	modes      map[string]string        // probe -> mode
	kernelLost func() map[string]uint64 // probe -> records the ring buffer refused
	events     map[string]*atomic.Uint64
	queueLost  map[string]*atomic.Uint64 // dropped because aggregation fell behind
	decodeLost atomic.Uint64
}

func newHealth(modes map[string]string, kernelLost func() map[string]uint64) *health {
	h := &health{modes: modes, kernelLost: kernelLost,
		events: map[string]*atomic.Uint64{}, queueLost: map[string]*atomic.Uint64{}}
	for _, p := range probeNames {
		h.events[p] = new(atomic.Uint64)
		h.queueLost[p] = new(atomic.Uint64)
	}
	return h
}

// count adds a batch to the per-probe event counters.
func (h *health) count(batch []event.Record) {
	var n [6]uint64
	for i := range batch {
		n[probeIndex(&batch[i])]++
	}
	for i := range n {
		if n[i] > 0 {
			h.events[probeNames[i]].Add(n[i])
		}
	}
}

var (
	probeInfoDesc = prometheus.NewDesc("strata_agent_probe_info", "Probes and the mode each runs in (disabled when the kernel refused it).", []string{"probe", "mode"}, nil)
	eventsDesc    = prometheus.NewDesc("strata_agent_events_total", "Kernel records received, per probe.", []string{"probe"}, nil)
	lostDesc      = prometheus.NewDesc("strata_agent_events_lost_total", "Records lost, per probe and stage (ringbuf: kernel buffer full; queue: aggregation behind; decode: malformed).", []string{"probe", "stage"}, nil)
)

func (h *health) Describe(ch chan<- *prometheus.Desc) {
	ch <- probeInfoDesc
	ch <- eventsDesc
	ch <- lostDesc
}

func (h *health) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	kernel := h.kernelLost()
	for _, p := range probeNames {
		ch <- prometheus.MustNewConstMetric(probeInfoDesc, prometheus.GaugeValue, 1, p, h.modes[p])
		counter(eventsDesc, h.events[p].Load(), p)
		counter(lostDesc, kernel[p], p, "ringbuf")
		counter(lostDesc, h.queueLost[p].Load(), p, "queue")
	}
	counter(lostDesc, h.decodeLost.Load(), "all", "decode")
}

// exporterStats is what every pushing exporter reports about itself.
type exporterStats func() (queued int, sent, errors, dropped uint64)

// exportMetrics reports each exporter's queue, sends, errors and drops.
type exportMetrics map[string]exporterStats

var (
	queueDesc   = prometheus.NewDesc("strata_agent_export_queue_length", "Items waiting to be sent, per exporter (spans, samples or events).", []string{"exporter"}, nil)
	sentDesc    = prometheus.NewDesc("strata_agent_export_sent_total", "Items the backend accepted, per exporter.", []string{"exporter"}, nil)
	errorsDesc  = prometheus.NewDesc("strata_agent_export_errors_total", "Failed sends (each attempt), per exporter.", []string{"exporter"}, nil)
	droppedDesc = prometheus.NewDesc("strata_agent_export_dropped_total", "Items given up on (full queue, refused by the backend, rate-limited), per exporter.", []string{"exporter"}, nil)
)

func (m exportMetrics) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDesc
	ch <- sentDesc
	ch <- errorsDesc
	ch <- droppedDesc
}

func (m exportMetrics) Collect(ch chan<- prometheus.Metric) {
	for name, stats := range m {
		queued, sent, errors, dropped := stats()
		ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(queued), name)
		ch <- prometheus.MustNewConstMetric(sentDesc, prometheus.CounterValue, float64(sent), name)
		ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(errors), name)
		ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(dropped), name)
	}
}

// statsOf adapts the exporters that keep export.Stats.
func statsOf(queued func() int, s *export.Stats) exporterStats {
	return func() (int, uint64, uint64, uint64) {
		return queued(), s.Sent.Load(), s.Errors.Load(), s.Dropped.Load()
	}
}
