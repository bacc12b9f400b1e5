package agent

import (
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// slow stands for an aggregation's collector: its series, and the time its
// collect takes on the test's clock.
type slow struct {
	clock  *time.Time
	took   time.Duration
	series []prometheus.Metric
}

func (slow) Describe(chan<- *prometheus.Desc) {}

func (s slow) Collect(ch chan<- prometheus.Metric) {
	for _, m := range s.series {
		ch <- m
	}
	*s.clock = s.clock.Add(s.took)
}

func TestEachCollectorIsTimed(t *testing.T) {
	clock := time.Unix(1000, 0)
	gauge := func(name string, v float64) prometheus.Metric {
		return prometheus.MustNewConstMetric(prometheus.NewDesc(name, "h", nil, nil), prometheus.GaugeValue, v)
	}
	timed := &timedCollectors{now: func() time.Time { return clock }}
	timed.add("flow", slow{&clock, 1250 * time.Millisecond, []prometheus.Metric{gauge("a", 1), gauge("b", 2)}})
	timed.add("http", slow{&clock, 3 * time.Millisecond, nil})
	timed.add("dns", slow{&clock, 0, []prometheus.Metric{gauge("c", 3)}})
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(timed)
	want := `
# HELP a h
# TYPE a gauge
a 1
# HELP b h
# TYPE b gauge
b 2
# HELP c h
# TYPE c gauge
c 3
# HELP strata_agent_collect_duration_seconds Time this scrape spent collecting each aggregation's series (its snapshot, building the series and handing them over), per collector.
# TYPE strata_agent_collect_duration_seconds gauge
strata_agent_collect_duration_seconds{collector="dns"} 0
strata_agent_collect_duration_seconds{collector="flow"} 1.25
strata_agent_collect_duration_seconds{collector="http"} 0.003
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	// Each scrape reports its own times.
	timed.cs[0].c = slow{&clock, 40 * time.Millisecond, nil}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP strata_agent_collect_duration_seconds Time this scrape spent collecting each aggregation's series (its snapshot, building the series and handing them over), per collector.
# TYPE strata_agent_collect_duration_seconds gauge
strata_agent_collect_duration_seconds{collector="dns"} 0
strata_agent_collect_duration_seconds{collector="flow"} 0.04
strata_agent_collect_duration_seconds{collector="http"} 0.003
`), "strata_agent_collect_duration_seconds"); err != nil {
		t.Fatal(err)
	}
}
