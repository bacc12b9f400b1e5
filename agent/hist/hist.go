// Package hist is a bucketed histogram kept in place by the aggregation
// and exposed as a constant Prometheus histogram at scrape time.
package hist

import "github.com/prometheus/client_golang/prometheus"

// Histogram counts observations per bucket (not cumulative; the last
// bucket is +Inf). The zero value is ready.
type Histogram struct {
	counts []uint64
	sum    float64
	total  uint64
}

// Observe adds v and returns the index of its bucket.
func (h *Histogram) Observe(bounds []float64, v float64) int {
	if len(h.counts) == 0 {
		h.counts = make([]uint64, len(bounds)+1)
	}
	i := 0
	for i < len(bounds) && v > bounds[i] {
		i++
	}
	h.counts[i]++
	h.sum += v
	h.total++
	return i
}

// AddCounts adds observations counted elsewhere: counts per bucket (as
// many as Observe's, the last +Inf) and their sum.
func (h *Histogram) AddCounts(counts []uint32, sum float64) {
	if len(h.counts) == 0 {
		h.counts = make([]uint64, len(counts))
	}
	for i, n := range counts[:min(len(counts), len(h.counts))] {
		h.counts[i] += uint64(n)
		h.total += uint64(n)
	}
	h.sum += sum
}

// Count is the number of observations.
func (h *Histogram) Count() uint64 { return h.total }

// Metric is the histogram as Prometheus wants it.
func (h *Histogram) Metric(d *prometheus.Desc, bounds []float64, labels ...string) prometheus.Metric {
	cum, b := uint64(0), make(map[float64]uint64, len(bounds))
	for i, le := range bounds {
		if i < len(h.counts) {
			cum += h.counts[i]
		}
		b[le] = cum
	}
	return prometheus.MustNewConstHistogram(d, h.total, h.sum, b, labels...)
}

// Add folds o's observations into h (same bounds).
func (h *Histogram) Add(o *Histogram) {
	if len(o.counts) == 0 {
		return
	}
	if len(h.counts) == 0 {
		h.counts = make([]uint64, len(o.counts))
	}
	for i, n := range o.counts {
		h.counts[i] += n
	}
	h.sum += o.sum
	h.total += o.total
}

// CopyTo makes dst a copy of h that shares no memory with it, reusing
// dst's buckets: a scrape copies under the aggregation's lock and builds
// metrics from the copy after releasing it.
func (h *Histogram) CopyTo(dst *Histogram) {
	dst.counts = append(dst.counts[:0], h.counts...)
	dst.sum, dst.total = h.sum, h.total
}

// Reserve gives h room for n buckets without changing what it holds, so
// that a later CopyTo of up to n buckets allocates nothing.
func (h *Histogram) Reserve(n int) {
	if cap(h.counts) < n {
		h.counts = append(make([]uint64, 0, n), h.counts...)
	}
}

// Cap is how many buckets h has room for.
func (h *Histogram) Cap() int { return cap(h.counts) }
