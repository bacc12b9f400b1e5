package agent

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

var collectDurationDesc = prometheus.NewDesc("strata_agent_collect_duration_seconds",
	"Time this scrape spent collecting each aggregation's series (its snapshot, building the series and handing them over), per collector.",
	[]string{"collector"}, nil)

// timedCollector is one aggregation's collector and the name its time is
// reported under.
type timedCollector struct {
	name string
	c    prometheus.Collector
}

// timedCollectors registers the aggregations' collectors (flow, http, dns)
// as one that times each: a scrape's cost shows per collector, in the same
// scrape, without the aggregations knowing. Unchecked, like the series of
// the collectors it wraps (they come and go with traffic).
type timedCollectors struct {
	cs  []timedCollector
	now func() time.Time
}

func newTimedCollectors() *timedCollectors { return &timedCollectors{now: time.Now} }

// add registers c under name.
func (t *timedCollectors) add(name string, c prometheus.Collector) {
	t.cs = append(t.cs, timedCollector{name, c})
}

func (t *timedCollectors) Describe(chan<- *prometheus.Desc) {}

// Collect runs the collectors one after the other: the registry's consumer
// is the bottleneck of a scrape, so running them at once would only blur
// what each costs.
func (t *timedCollectors) Collect(ch chan<- prometheus.Metric) {
	took := make([]time.Duration, len(t.cs))
	for i, c := range t.cs {
		start := t.now()
		c.c.Collect(ch)
		took[i] = t.now().Sub(start)
	}
	for i, c := range t.cs {
		ch <- prometheus.MustNewConstMetric(collectDurationDesc, prometheus.GaugeValue, took[i].Seconds(), c.name)
	}
}
