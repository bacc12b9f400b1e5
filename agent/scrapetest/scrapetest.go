// Package scrapetest compares what collectors expose, series by series:
// for the tests that hold a collector to the one it replaced.
package scrapetest

import (
	"sort"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Collect is everything c collects now.
func Collect(c prometheus.Collector) []prometheus.Metric {
	ch := make(chan prometheus.Metric, 1<<16)
	go func() { c.Collect(ch); close(ch) }()
	var ms []prometheus.Metric
	for m := range ch {
		ms = append(ms, m)
	}
	return ms
}

// Lines renders metrics one line per series (descriptor and value),
// sorted.
func Lines(t testing.TB, ms []prometheus.Metric) []string {
	t.Helper()
	var out []string
	for _, m := range ms {
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		out = append(out, m.Desc().String()+" "+d.String())
	}
	sort.Strings(out)
	return out
}

// Same fails t at the first series that differs.
func Same(t testing.TB, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%d series, want %d", len(got), len(want))
	}
	for i := range got {
		if got[i] != want[i] {
			t.Fatalf("series %d:\n got %s\nwant %s", i, got[i], want[i])
		}
	}
}
