package agent

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stratanet/strata/probes/event"
)

// probeOf names the probe that produces each kind of event.
func probeOf(k event.Kind) string {
	switch k {
	case event.Snapshot, event.SweepEnd:
		return "tcp_sweep"
	case event.Retransmit:
		return "tcp_retransmit"
	case event.ResetSent, event.ResetReceived:
		return "tcp_reset"
	}
	return "tcp_state"
}

var probeNames = []string{"tcp_state", "tcp_sweep", "tcp_retransmit", "tcp_reset"}

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
