package agent

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratanet/strata/identity/process"
)

var (
	hostLookupsDesc = prometheus.NewDesc("strata_agent_host_lookups_total",
		"What the event loop asked the host worker (lookup: addresses = a namespace's, listed with setns; owners = a scan of every process's fds; namespaces = a listing of every process's network namespace; cgroup = a process's cgroup file, for its pod in Kubernetes mode), by outcome: answered, failed, dropped (the worker's queue was full).",
		[]string{"lookup", "outcome"}, nil)
	heldDesc = prometheus.NewDesc("strata_agent_held_records",
		"Records the event loop holds, in order, until a namespace seen for the first time has its addresses listed.", nil, nil)
	sweepDesc = prometheus.NewDesc("strata_agent_sweep_seconds",
		"How long the last sweep of every network namespace's sockets took (the kernel's iterators included).", nil, nil)
	sweepNetnsDesc = prometheus.NewDesc("strata_agent_sweep_namespaces",
		"Network namespaces the last sweep read.", nil, nil)
	releasedDesc = prometheus.NewDesc("strata_agent_held_released_total",
		"Holds given up (too long or too many records): the records went on without the answer they waited for.", nil, nil)
)

// sweepStats is what the last sweep took.
type sweepStats struct {
	seconds    atomic.Uint64 // ns
	namespaces atomic.Uint64
}

// hostCollector exports the resolver's lookups, the loop's holds and the
// sweeps: the agent's work on the host beside the kernel's records.
type hostCollector struct {
	stats  *process.Stats
	held   *atomic.Int64
	sweeps *sweepStats
}

func (c hostCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- hostLookupsDesc
	ch <- heldDesc
	ch <- releasedDesc
	ch <- sweepDesc
	ch <- sweepNetnsDesc
}

func (c hostCollector) Collect(ch chan<- prometheus.Metric) {
	for _, n := range []process.Need{process.Addrs, process.Owners, process.Namespaces, process.Cgroup} {
		failed := c.stats.Failed[n].Load() // first: answered counts before failed does
		answered := c.stats.Answered[n].Load()
		ch <- prometheus.MustNewConstMetric(hostLookupsDesc, prometheus.CounterValue, float64(answered-failed), n.String(), "answered")
		ch <- prometheus.MustNewConstMetric(hostLookupsDesc, prometheus.CounterValue, float64(failed), n.String(), "failed")
		ch <- prometheus.MustNewConstMetric(hostLookupsDesc, prometheus.CounterValue, float64(c.stats.Dropped[n].Load()), n.String(), "dropped")
	}
	ch <- prometheus.MustNewConstMetric(heldDesc, prometheus.GaugeValue, float64(c.held.Load()))
	ch <- prometheus.MustNewConstMetric(releasedDesc, prometheus.CounterValue, float64(c.stats.Released.Load()))
	ch <- prometheus.MustNewConstMetric(sweepDesc, prometheus.GaugeValue, float64(c.sweeps.seconds.Load())/1e9)
	ch <- prometheus.MustNewConstMetric(sweepNetnsDesc, prometheus.GaugeValue, float64(c.sweeps.namespaces.Load()))
}
