package agent

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stratanet/strata/exporters/export"
	"github.com/stratanet/strata/probes/event"
)

// probeNames lists the probes; probeIndex maps each record to its probe.
var probeNames = []string{"tcp_state", "tcp_sweep", "tcp_retransmit", "tcp_reset", "http", "dns"}

func probeIndex(r *event.Record) int {
	if r.HTTP != nil || r.Tally != nil {
		return 4
	}
	if r.DNS != nil {
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

// health is the agent's view of itself: what each probe runs as, what it
// delivered and what was lost where, and whether it is alive and ready
// (/healthz, /readyz).
type health struct {
	kernel     atomic.Pointer[kernelView] // nil until the probes are loaded
	events     map[string]*atomic.Uint64
	decodeLost atomic.Uint64

	now        func() time.Time
	stall      time.Duration               // the event loop is dead after this long without a turn
	turned     atomic.Int64                // unix nanoseconds of the loop's last turn; 0: not started
	readerDone atomic.Pointer[error]       // why the ring-buffer reader stopped; nil while it runs
	synced     atomic.Pointer[func() bool] // the informers' state, in Kubernetes mode
	kube       bool                        // Kubernetes mode: ready only once synced
}

// kernelView is what the loaded probes tell about themselves.
type kernelView struct {
	modes map[string]string        // probe -> mode
	lost  func() map[string]uint64 // probe -> records the ring buffer refused
}

// stallAfter is how long the event loop may go without a turn before
// /healthz fails. It turns at least once a second (its tick), so this
// leaves room for a long GC pause or a burst, and catches a loop that is
// stuck or gone well before a kubelet's default three failed probes.
const stallAfter = 10 * time.Second

func newHealth(kube bool) *health {
	h := &health{events: map[string]*atomic.Uint64{},
		now: time.Now, stall: stallAfter, kube: kube}
	for _, p := range probeNames {
		h.events[p] = new(atomic.Uint64)
	}
	return h
}

// loaded records the probes once the kernel took them.
func (h *health) loaded(modes map[string]string, kernelLost func() map[string]uint64) {
	h.kernel.Store(&kernelView{modes: modes, lost: kernelLost})
}

// watchSync makes readiness wait for the informers.
func (h *health) watchSync(synced func() bool) { h.synced.Store(&synced) }

// turn marks one turn of the event loop.
func (h *health) turn() { h.turned.Store(h.now().UnixNano()) }

// readerStopped records that the ring-buffer reader returned.
func (h *health) readerStopped(err error) {
	if err == nil {
		err = errors.New("returned without an error")
	}
	h.readerDone.Store(&err)
}

// Live is /healthz: an error once the ring-buffer reader stopped or the
// event loop has not turned for the stall time. Before the loop starts
// (probes loading, informers listing) the agent counts as alive: /readyz
// says it is not ready yet.
func (h *health) Live() error {
	if err := h.readerDone.Load(); err != nil {
		return fmt.Errorf("ring-buffer reader stopped: %w", *err)
	}
	if last := h.turned.Load(); last != 0 {
		if idle := h.now().Sub(time.Unix(0, last)); idle > h.stall {
			return fmt.Errorf("event loop has not turned for %s (limit %s)", idle.Round(time.Second), h.stall)
		}
	}
	return nil
}

// Ready is /readyz: alive, probes loaded, the event loop running and, in
// Kubernetes mode, every informer's first list in.
func (h *health) Ready() error {
	if err := h.Live(); err != nil {
		return err
	}
	if h.kernel.Load() == nil {
		return errors.New("probes not loaded yet")
	}
	if h.turned.Load() == 0 {
		return errors.New("event loop not started yet")
	}
	if h.kube {
		if s := h.synced.Load(); s == nil || !(*s)() {
			return errors.New("Kubernetes informers have not listed everything yet")
		}
	}
	return nil
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
	k := h.kernel.Load()
	var kernel map[string]uint64
	if k != nil {
		kernel = k.lost()
	}
	for _, p := range probeNames {
		if k != nil {
			ch <- prometheus.MustNewConstMetric(probeInfoDesc, prometheus.GaugeValue, 1, p, k.modes[p])
			counter(lostDesc, kernel[p], p, "ringbuf")
		}
		counter(eventsDesc, h.events[p].Load(), p)
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
