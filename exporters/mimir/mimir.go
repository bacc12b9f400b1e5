// Package mimir pushes the agent's metrics with Prometheus remote write
// (Grafana Mimir, Prometheus' receiver, anything that speaks it).
//
// Every interval the registry is gathered into one snapshot and queued; a
// sender goroutine writes snapshots oldest first. The queue is bounded in
// samples: while the backend is away the oldest snapshots go first (counted),
// since counters are cumulative and the newest value says the most. A slow or
// dead backend only ever fills this queue; it never blocks the agent.
package mimir

import (
	"context"
	"encoding/binary"
	"fmt"
	"hash/fnv"
	"math"
	"net/http"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/exp/api/remote"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
	"go.uber.org/zap"

	"github.com/stratanet/strata/exporters/export"
)

// Config of the exporter.
type Config struct {
	URL            string // the push endpoint, e.g. http://mimir:8080/api/v1/push
	HTTP           export.HTTP
	Interval       time.Duration     // between snapshots
	QueueSamples   int               // samples waiting at most
	BatchSamples   int               // samples per request at most
	ExternalLabels map[string]string // cluster, node: added unless a series has them
	Timeout        time.Duration     // per request
}

// shutdownWait bounds the last push at exit, well inside a pod's grace period.
const shutdownWait = 5 * time.Second

// Exporter is the remote-write exporter.
type Exporter struct {
	export.Stats
	log    *zap.Logger
	cfg    Config
	api    *remote.API
	gather prometheus.Gatherer
	health *export.Health
	last   *lastResult // the last attempt's HTTP status or transport error

	mu       sync.Mutex
	queue    []*prompb.WriteRequest // oldest first
	queued   int                    // samples in queue
	inflight *prompb.WriteRequest   // being sent: never shed
	wake     chan struct{}
	sent     map[uint64]bool // the exemplars the last snapshot held: not sent again
}

func New(log *zap.Logger, cfg Config, g prometheus.Gatherer) (*Exporter, error) {
	if cfg.Interval <= 0 {
		cfg.Interval = 15 * time.Second
	}
	if cfg.QueueSamples <= 0 {
		cfg.QueueSamples = 100000
	}
	if cfg.BatchSamples <= 0 {
		cfg.BatchSamples = 2000
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	client, err := cfg.HTTP.Client("strata")
	if err != nil {
		return nil, err
	}
	client.Timeout = cfg.Timeout
	e := &Exporter{log: log, cfg: cfg, gather: g, wake: make(chan struct{}, 1),
		health: export.NewHealth(log, "metrics to "+cfg.URL)}
	e.last = &lastResult{}
	client.Transport = recorder{client.Transport, e.last}
	// A few quick retries inside one write; longer outages are the queue's.
	e.api, err = remote.NewAPI(cfg.URL, remote.WithAPIHTTPClient(client), remote.WithAPIPath(""),
		remote.WithAPIBackoff(remote.BackoffConfig{Min: 250 * time.Millisecond, Max: 2 * time.Second, MaxRetries: 2}))
	if err != nil {
		return nil, err
	}
	return e, nil
}

// QueueLength is how many samples wait.
func (e *Exporter) QueueLength() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.queued
}

// Run snapshots and sends until ctx ends, then sends one last snapshot.
func (e *Exporter) Run(ctx context.Context) error {
	done := make(chan struct{})
	go func() { defer close(done); e.send(ctx) }()
	tick := time.NewTicker(e.cfg.Interval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			<-done
			// The last values, so a restart loses at most the time it takes.
			final, cancel := context.WithTimeout(context.Background(), shutdownWait)
			defer cancel()
			e.Snapshot(time.Now())
			e.drain(final)
			return nil
		case now := <-tick.C:
			e.Snapshot(now)
		}
	}
}

// Snapshot gathers the registry and queues it.
func (e *Exporter) Snapshot(now time.Time) {
	mfs, err := e.gather.Gather()
	if err != nil {
		// Gather returns what it could alongside the error; send that.
		e.log.Debug("gathering metrics", zap.Error(err))
	}
	ts := now.UnixMilli()
	e.mu.Lock()
	series, sent := Convert(mfs, ts, e.sent, e.cfg.ExternalLabels)
	e.sent = sent
	e.mu.Unlock()
	var batch []*prompb.WriteRequest
	for len(series) > 0 {
		n, samples := 0, 0
		for n < len(series) && samples < e.cfg.BatchSamples {
			samples += len(series[n].Samples)
			n++
		}
		batch = append(batch, &prompb.WriteRequest{Timeseries: series[:n:n]})
		series = series[n:]
	}
	e.enqueue(batch)
	select {
	case e.wake <- struct{}{}:
	default:
	}
}

// enqueue adds a snapshot's requests, then sheds the oldest requests while
// the queue is over its bound. The snapshot just added is kept whole (a
// snapshot cut in part would lose some series entirely), and so is the
// request being sent.
func (e *Exporter) enqueue(snapshot []*prompb.WriteRequest) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, r := range snapshot {
		e.queue = append(e.queue, r)
		e.queued += samplesIn(r)
	}
	keep := len(e.queue) - len(snapshot) // requests before this are older
	for i := 0; e.queued > e.cfg.QueueSamples && i < keep; {
		if e.queue[i] == e.inflight {
			i++
			continue
		}
		n := samplesIn(e.queue[i])
		e.queue = append(e.queue[:i], e.queue[i+1:]...)
		keep--
		e.queued -= n
		e.Dropped.Add(uint64(n))
	}
}

func samplesIn(r *prompb.WriteRequest) int {
	n := 0
	for i := range r.Timeseries {
		n += len(r.Timeseries[i].Samples)
	}
	return n
}

// front is the oldest request, from now on in flight.
func (e *Exporter) front() *prompb.WriteRequest {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.inflight = nil
	if len(e.queue) == 0 {
		return nil
	}
	e.inflight = e.queue[0]
	return e.inflight
}

// pop removes the request in flight, which is still the front: only it
// could have been taken, and shedding spares it.
func (e *Exporter) pop(r *prompb.WriteRequest) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.inflight = nil
	if len(e.queue) > 0 && e.queue[0] == r {
		e.queue[0] = nil
		e.queue = e.queue[1:]
		e.queued -= samplesIn(r)
	}
}

// send writes the queue's front until ctx ends, backing off while the
// backend fails.
func (e *Exporter) send(ctx context.Context) {
	backoff := time.Duration(0)
	for {
		if backoff > 0 {
			select {
			case <-ctx.Done():
				return
			case <-time.After(backoff):
			}
		}
		r := e.front()
		if r == nil {
			select {
			case <-ctx.Done():
				return
			case <-e.wake:
				continue
			}
		}
		err := e.write(ctx, r)
		if ctx.Err() != nil {
			return // what is left goes in Run's last drain
		}
		if err != nil && export.Retryable(err) {
			backoff = min(max(2*backoff, time.Second), 30*time.Second)
		} else {
			backoff = 0
		}
	}
}

// drain sends what is queued, once each, until ctx ends.
func (e *Exporter) drain(ctx context.Context) {
	for r := e.front(); r != nil && ctx.Err() == nil; r = e.front() {
		if err := e.write(ctx, r); err != nil && export.Retryable(err) {
			return
		}
	}
}

// write sends r and settles its fate: sent, dropped as unacceptable, or kept
// for the next attempt.
func (e *Exporter) write(ctx context.Context, r *prompb.WriteRequest) error {
	n := samplesIn(r)
	e.last.reset()
	// Attempts that will be retried are failures to report now, not after
	// the last retry: a backend that never answers takes a timeout each.
	retrying := remote.WithWriteRetryCallback(func(err error) {
		e.Errors.Add(1)
		e.health.Failed(e.classify(err), e.keeping())
		e.last.reset()
	})
	_, err := e.api.Write(ctx, remote.WriteV1MessageType, r, retrying)
	if err == nil {
		e.pop(r)
		e.Sent.Add(uint64(n))
		e.health.OK()
		return nil
	}
	if ctx.Err() != nil {
		return ctx.Err()
	}
	err = e.classify(err)
	e.Errors.Add(1)
	if export.Retryable(err) {
		e.health.Failed(err, e.keeping())
		return err
	}
	// Sending the same data again would be refused again.
	e.pop(r)
	e.Dropped.Add(uint64(n))
	e.health.Failed(err, "dropping the samples it refuses")
	return err
}

// classify replaces the client's error, which hides its cause, with what
// the transport saw: an HTTP status or the network error. Except a
// timeout: when the client's own deadline ends an attempt, the transport
// may see only its cancellation ("request canceled"), and the client's
// error is the one that says why.
func (e *Exporter) classify(err error) error {
	code, terr := e.last.get()
	switch {
	case code >= 300:
		return &export.StatusError{Code: code, Body: errBody(err)}
	case terr != nil && export.Condition(err) == "timeout":
		return err
	case terr != nil:
		return terr
	}
	return err
}

func (e *Exporter) keeping() string {
	return "keeping the newest samples in a queue of " + strconv.Itoa(e.cfg.QueueSamples)
}

func errBody(err error) string {
	s := err.Error()
	if len(s) > 256 {
		s = s[:256]
	}
	return s
}

// lastResult is what the transport saw on the last attempt.
type lastResult struct {
	mu   sync.Mutex
	code int
	err  error
}

func (l *lastResult) reset() { l.set(0, nil) }
func (l *lastResult) set(code int, err error) {
	l.mu.Lock()
	l.code, l.err = code, err
	l.mu.Unlock()
}
func (l *lastResult) get() (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.code, l.err
}

// recorder remembers each response's status or transport error.
type recorder struct {
	next http.RoundTripper
	last *lastResult
}

func (r recorder) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := r.next.RoundTrip(req)
	if err != nil {
		if cerr := req.Context().Err(); cerr != nil {
			err = fmt.Errorf("%w (%w)", cerr, err) // the client's timeout: say so
		}
		r.last.set(0, err)
	} else {
		r.last.set(resp.StatusCode, nil)
	}
	return resp, err
}

// Convert turns gathered families into remote-write series stamped ts (ms).
// Exemplars are sent once: those in sent (what the previous snapshot held)
// are left out, and the exemplars present now are returned for the next
// call. Which ones are new is decided by identity, not by time: a
// request's exemplar carries the time it ended, and a request is often
// counted later than the previous snapshot (held for its names, paired at
// a sweep), so "newer than the last snapshot" would lose most of them.
func Convert(mfs []*dto.MetricFamily, ts int64, sent map[uint64]bool, external map[string]string) ([]prompb.TimeSeries, map[uint64]bool) {
	var out []prompb.TimeSeries
	now := map[uint64]bool{}
	for _, mf := range mfs {
		name := mf.GetName()
		for _, m := range mf.Metric {
			base := labelsOf(m, external)
			add := func(suffix string, v float64, ex *dto.Exemplar, extra ...string) {
				ls := make([]prompb.Label, 0, len(base)+2)
				ls = append(ls, prompb.Label{Name: "__name__", Value: name + suffix})
				ls = append(ls, base...)
				for i := 0; i+1 < len(extra); i += 2 {
					ls = append(ls, prompb.Label{Name: extra[i], Value: extra[i+1]})
				}
				sort.Slice(ls, func(i, j int) bool { return ls[i].Name < ls[j].Name })
				s := prompb.TimeSeries{Labels: ls, Samples: []prompb.Sample{{Value: v, Timestamp: ts}}}
				if ex != nil {
					e := exemplar(ex)
					id := exemplarID(ls, e)
					now[id] = true
					if !sent[id] {
						s.Exemplars = []prompb.Exemplar{e}
					}
				}
				out = append(out, s)
			}
			switch mf.GetType() {
			case dto.MetricType_COUNTER:
				add("", m.GetCounter().GetValue(), m.GetCounter().GetExemplar())
			case dto.MetricType_GAUGE:
				add("", m.GetGauge().GetValue(), nil)
			case dto.MetricType_UNTYPED:
				add("", m.GetUntyped().GetValue(), nil)
			case dto.MetricType_HISTOGRAM:
				h := m.GetHistogram()
				inf := false
				for _, b := range h.Bucket {
					inf = inf || math.IsInf(b.GetUpperBound(), 1)
					add("_bucket", float64(b.GetCumulativeCount()), b.GetExemplar(), "le", formatFloat(b.GetUpperBound()))
				}
				if !inf {
					add("_bucket", float64(h.GetSampleCount()), nil, "le", "+Inf")
				}
				add("_sum", h.GetSampleSum(), nil)
				add("_count", float64(h.GetSampleCount()), nil)
			case dto.MetricType_SUMMARY:
				s := m.GetSummary()
				for _, q := range s.Quantile {
					add("", q.GetValue(), nil, "quantile", formatFloat(q.GetQuantile()))
				}
				add("_sum", s.GetSampleSum(), nil)
				add("_count", float64(s.GetSampleCount()), nil)
			}
		}
	}
	return out, now
}

// exemplarID identifies an exemplar of a series (a hash: a collision at
// worst leaves one exemplar unsent).
func exemplarID(series []prompb.Label, e prompb.Exemplar) uint64 {
	h := fnv.New64a()
	for _, ls := range [][]prompb.Label{series, e.Labels} {
		for _, l := range ls {
			h.Write([]byte(l.Name))
			h.Write([]byte{0})
			h.Write([]byte(l.Value))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	binary.Write(h, binary.LittleEndian, [2]uint64{uint64(e.Timestamp), math.Float64bits(e.Value)})
	return h.Sum64()
}

// labelsOf is a series' labels with the external ones it lacks. A label
// with an empty value is left out: to Prometheus and Mimir it is no label,
// and sending it costs more than bytes — Prometheus stores the series
// without it but looks the series up with it when adding an exemplar, and
// so drops every exemplar of a series with an empty label (our
// destination_service="" among them).
func labelsOf(m *dto.Metric, external map[string]string) []prompb.Label {
	ls := make([]prompb.Label, 0, len(m.Label)+len(external))
	have := map[string]bool{}
	for _, l := range m.Label {
		have[l.GetName()] = true
		if l.GetValue() != "" {
			ls = append(ls, prompb.Label{Name: l.GetName(), Value: l.GetValue()})
		}
	}
	for k, v := range external {
		if !have[k] && v != "" {
			ls = append(ls, prompb.Label{Name: k, Value: v})
		}
	}
	return ls
}

func exemplar(ex *dto.Exemplar) prompb.Exemplar {
	ls := make([]prompb.Label, 0, len(ex.Label))
	for _, l := range ex.Label {
		ls = append(ls, prompb.Label{Name: l.GetName(), Value: l.GetValue()})
	}
	return prompb.Exemplar{Labels: ls, Value: ex.GetValue(), Timestamp: ex.GetTimestamp().AsTime().UnixMilli()}
}

func formatFloat(f float64) string {
	switch {
	case math.IsInf(f, 1):
		return "+Inf"
	case math.IsInf(f, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(f, 'g', -1, 64)
}
