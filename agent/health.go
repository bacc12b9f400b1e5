package agent

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stratanet/strata/exporters/tempo"
	"github.com/stratanet/strata/probes/event"
)

// probeNames lists the probes; probeIndex maps each record to its probe.
var probeNames = []string{"tcp_state", "tcp_sweep", "tcp_retransmit", "tcp_reset", "http"}

func probeIndex(r *event.Record) int {
	if r.IsHTTP {
		return 4
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
	var n [5]uint64
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

// exportMetrics reports one exporter's queue, errors and drops.
func exportMetrics(name string, e *tempo.Exporter) prometheus.Collector {
	return exporterCollector{name, e}
}

type exporterCollector struct {
	name string
	e    *tempo.Exporter
}

var (
	queueDesc   = prometheus.NewDesc("strata_agent_export_queue_length", "Items waiting to be sent, per exporter.", []string{"exporter"}, nil)
	errorsDesc  = prometheus.NewDesc("strata_agent_export_errors_total", "Failed sends, per exporter.", []string{"exporter"}, nil)
	droppedDesc = prometheus.NewDesc("strata_agent_export_dropped_total", "Items dropped (full queue or failed send), per exporter.", []string{"exporter"}, nil)
)

func (c exporterCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- queueDesc
	ch <- errorsDesc
	ch <- droppedDesc
}

func (c exporterCollector) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(queueDesc, prometheus.GaugeValue, float64(c.e.QueueLength()), c.name)
	ch <- prometheus.MustNewConstMetric(errorsDesc, prometheus.CounterValue, float64(c.e.Errors.Load()), c.name)
	ch <- prometheus.MustNewConstMetric(droppedDesc, prometheus.CounterValue, float64(c.e.Dropped.Load()), c.name)
}
