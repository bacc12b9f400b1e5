package hist

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

var desc = prometheus.NewDesc("h", "h", nil, nil)

func write(t *testing.T, h *Histogram, bounds []float64) string {
	t.Helper()
	var m dto.Metric
	if err := h.Metric(desc, bounds, []string{}...).Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.String()
}

// A copy shares no memory with its source and reuses its own buckets.
func TestCopyToIsIndependent(t *testing.T) {
	bounds := []float64{1, 2}
	var src, dst Histogram
	src.Observe(bounds, 0.5)
	src.Observe(bounds, 3)
	src.CopyTo(&dst)
	want := write(t, &src, bounds)
	buckets := &dst.counts[0]
	src.Observe(bounds, 1.5)
	if got := write(t, &dst, bounds); got != want {
		t.Fatalf("copy changed with its source:\n got %s\nwant %s", got, want)
	}
	if dst.Count() != 2 || dst.sum != 3.5 {
		t.Fatalf("copy: count %d sum %v, want 2 and 3.5", dst.Count(), dst.sum)
	}
	src.CopyTo(&dst)
	if &dst.counts[0] != buckets || dst.Count() != 3 || write(t, &dst, bounds) != write(t, &src, bounds) {
		t.Fatal("a second copy did not reuse the buckets or differs from its source")
	}
	// An empty source empties the copy, buckets kept.
	(&Histogram{}).CopyTo(&dst)
	if dst.Count() != 0 || len(dst.counts) != 0 || cap(dst.counts) == 0 {
		t.Fatalf("copy of an empty histogram: %+v", dst)
	}
	if got := write(t, &dst, bounds); got != write(t, &Histogram{}, bounds) {
		t.Fatalf("empty copy exposes %s", got)
	}
}
