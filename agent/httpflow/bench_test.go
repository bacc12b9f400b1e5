package httpflow

import (
	"strconv"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

// fixed names every connection the same, as a standalone host names a
// server it knows.
type fixed struct{}

func (fixed) Observe(*event.TCP) {}
func (fixed) Forget(uint64)      {}
func (fixed) Identify(e *event.TCP) identity.Pair {
	return identity.Pair{Source: identity.Workload{Name: "wrk"}, Destination: identity.Workload{Name: "nginx"},
		Port: 8080, Reporter: identity.Server}
}

// BenchmarkPaired is the agent's share of a keep-alive request at a busy
// server: one exchange paired in the kernel, named through the flow table.
func BenchmarkPaired(b *testing.B) {
	tb := New(flow.NewTable(zap.NewNop(), fixed{}, flow.DefaultOptions()), nil, nil, wall, "", DefaultOptions())
	evs := make([]*event.HTTP, 32)
	for i := range evs {
		evs[i] = paired(uint64(i+1), 0, 1e6, "GET /api/users/"+strconv.Itoa(i)+" HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n", 200)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tb.Apply(evs[i%len(evs)])
	}
}

// BenchmarkScrape is a scrape of 20 000 request series: how long the table's
// lock is held (the copy: locked-ns/scrape) beside how long the whole
// Collect takes (collect-ns/scrape), which is what a scrape held the lock
// for before the copy.
func BenchmarkScrape(b *testing.B) {
	opts := DefaultOptions()
	opts.MaxRoutes = 20000
	tb := New(names, nil, nil, wall, "", opts)
	for i := range 20000 {
		tb.Apply(req(1, uint64(10*i), "GET /r"+strconv.Itoa(i)+" HTTP/1.1\r\n"))
		tb.Apply(resp(1, uint64(10*i+5), "HTTP/1.1 200 OK\r\n"))
	}
	if len(tb.series) != 20000 {
		b.Fatalf("%d series", len(tb.series))
	}
	ch := make(chan prometheus.Metric, 1<<16)
	var locked, collect time.Duration
	n := 0
	for b.Loop() {
		t0 := time.Now()
		tb.snapshot()
		t1 := time.Now()
		tb.Collect(ch)
		collect += time.Since(t1)
		locked += t1.Sub(t0)
		for len(ch) > 0 {
			<-ch
		}
		n++
	}
	b.ReportMetric(float64(locked.Nanoseconds())/float64(n), "locked-ns/scrape")
	b.ReportMetric(float64(collect.Nanoseconds())/float64(n), "collect-ns/scrape")
}
