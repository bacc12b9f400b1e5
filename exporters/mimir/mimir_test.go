package mimir_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/klauspost/compress/snappy"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/prometheus/prompb"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stratanet/strata/exporters/export"
	"github.com/stratanet/strata/exporters/mimir"
)

// render writes a series the way the assertions spell it:
// {labels in their order} value @ts, then each exemplar.
func render(s prompb.TimeSeries) string {
	var b strings.Builder
	b.WriteString(labelString(s.Labels))
	for _, smp := range s.Samples {
		fmt.Fprintf(&b, " %g @%d", smp.Value, smp.Timestamp)
	}
	for _, ex := range s.Exemplars {
		fmt.Fprintf(&b, " # %s %g @%d", labelString(ex.Labels), ex.Value, ex.Timestamp)
	}
	return b.String()
}

func labelString(ls []prompb.Label) string {
	parts := make([]string, len(ls))
	for i, l := range ls {
		parts[i] = fmt.Sprintf("%s=%q", l.Name, l.Value)
	}
	return "{" + strings.Join(parts, ", ") + "}"
}

func renderAll(ss []prompb.TimeSeries) []string {
	out := make([]string, len(ss))
	for i := range ss {
		out[i] = render(ss[i])
	}
	return out
}

func sameLines(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot\n\t%s\nwant\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// exemplarMillis is the timestamp the client library gave the first exemplar
// of the named family.
func exemplarMillis(t *testing.T, mfs []*dto.MetricFamily, name string) int64 {
	t.Helper()
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.Metric {
			if ex := m.GetCounter().GetExemplar(); ex != nil {
				return ex.GetTimestamp().AsTime().UnixMilli()
			}
			for _, b := range m.GetHistogram().GetBucket() {
				if ex := b.GetExemplar(); ex != nil {
					return ex.GetTimestamp().AsTime().UnixMilli()
				}
			}
		}
	}
	t.Fatalf("no exemplar in %s", name)
	return 0
}

func TestConvert(t *testing.T) {
	reg := prometheus.NewRegistry()
	reqs := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "req_total", Help: "h"}, []string{"code", "node", "service"})
	temp := prometheus.NewGauge(prometheus.GaugeOpts{Name: "temp_celsius", Help: "h"})
	lat := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "lat_seconds", Help: "h", Buckets: []float64{0.1, 1}})
	reg.MustRegister(reqs, temp, lat)
	reqs.WithLabelValues("200", "other-node", "").(prometheus.ExemplarAdder).AddWithExemplar(3, prometheus.Labels{"trace_id": "abc"})
	temp.Set(21.5)
	lat.Observe(0.05)
	lat.(prometheus.ExemplarObserver).ObserveWithExemplar(0.5, prometheus.Labels{"trace_id": "def"})
	lat.Observe(2)

	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	exReq := exemplarMillis(t, mfs, "req_total")
	exLat := exemplarMillis(t, mfs, "lat_seconds")
	ext := map[string]string{"cluster": "c1", "node": "n1", "empty": ""}
	const ts = 1700000000123

	// A first snapshot: both exemplars are sent.
	series, sent := mimir.Convert(mfs, ts, nil, ext)
	got := renderAll(series)
	want := []string{
		`{__name__="lat_seconds_bucket", cluster="c1", le="0.1", node="n1"} 1 @1700000000123`,
		fmt.Sprintf(`{__name__="lat_seconds_bucket", cluster="c1", le="1", node="n1"} 2 @1700000000123 # {trace_id="def"} 0.5 @%d`, exLat),
		`{__name__="lat_seconds_bucket", cluster="c1", le="+Inf", node="n1"} 3 @1700000000123`,
		`{__name__="lat_seconds_sum", cluster="c1", node="n1"} 2.55 @1700000000123`,
		`{__name__="lat_seconds_count", cluster="c1", node="n1"} 3 @1700000000123`,
		// The series' own node wins over the external one; its empty
		// service label is no label at all (Prometheus would drop the
		// exemplar of a series sent with one).
		fmt.Sprintf(`{__name__="req_total", cluster="c1", code="200", node="other-node"} 3 @1700000000123 # {trace_id="abc"} 3 @%d`, exReq),
		`{__name__="temp_celsius", cluster="c1", node="n1"} 21.5 @1700000000123`,
	}
	sameLines(t, "series with exemplars", got, want)

	// The next snapshot holds the same exemplars: none is sent again.
	series, sent = mimir.Convert(mfs, ts+1000, sent, ext)
	got = renderAll(series)
	for i := range want {
		want[i] = strings.ReplaceAll(want[i], "@1700000000123", "@1700000001123")
		if j := strings.Index(want[i], " # "); j >= 0 {
			want[i] = want[i][:j]
		}
	}
	sameLines(t, "series once their exemplars were sent", got, want)

	// A request counted after that snapshot but stamped before it (it
	// ended earlier, and waited for its names): its exemplar is new, and
	// sent, though older than the snapshot; the other is not sent again.
	lat.(prometheus.ExemplarObserver).ObserveWithExemplar(0.7, prometheus.Labels{"trace_id": "late"})
	if mfs, err = reg.Gather(); err != nil {
		t.Fatal(err)
	}
	late := exemplarMillis(t, mfs, "lat_seconds")
	series, sent = mimir.Convert(mfs, late+60000, sent, ext)
	var withExemplars []string
	for _, line := range renderAll(series) {
		if strings.Contains(line, " # ") {
			withExemplars = append(withExemplars, line)
		}
	}
	sameLines(t, "the late exemplar alone", withExemplars, []string{
		fmt.Sprintf(`{__name__="lat_seconds_bucket", cluster="c1", le="1", node="n1"} 3 @%d # {trace_id="late"} 0.7 @%d`, late+60000, late),
	})
	if len(sent) != 2 {
		t.Errorf("%d exemplars remembered, want the 2 the registry holds", len(sent))
	}

	// No external labels: only the series' own.
	series, _ = mimir.Convert(mfs, ts, sent, nil)
	got = renderAll(series)
	sameLines(t, "series without external labels", got, []string{
		`{__name__="lat_seconds_bucket", le="0.1"} 1 @1700000000123`,
		fmt.Sprintf(`{__name__="lat_seconds_bucket", le="1"} 3 @1700000000123 # {trace_id="late"} 0.7 @%d`, late),
		`{__name__="lat_seconds_bucket", le="+Inf"} 4 @1700000000123`,
		`{__name__="lat_seconds_sum"} 3.25 @1700000000123`,
		`{__name__="lat_seconds_count"} 4 @1700000000123`,
		fmt.Sprintf(`{__name__="req_total", code="200", node="other-node"} 3 @1700000000123 # {trace_id="abc"} 3 @%d`, exReq),
		`{__name__="temp_celsius"} 21.5 @1700000000123`,
	})
}

// An exemplar above the highest bucket makes the client library add a +Inf
// bucket of its own; it must not appear twice.
func TestConvertInfBucketFromLibrary(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "size_bytes", Help: "h", Buckets: []float64{10, 100}})
	reg.MustRegister(h)
	h.Observe(50)
	h.(prometheus.ExemplarObserver).ObserveWithExemplar(5000, prometheus.Labels{"trace_id": "big"})
	mfs, _ := reg.Gather()
	ex := exemplarMillis(t, mfs, "size_bytes")
	series, _ := mimir.Convert(mfs, 5, nil, nil)
	got := renderAll(series)
	sameLines(t, "series", got, []string{
		`{__name__="size_bytes_bucket", le="10"} 0 @5`,
		`{__name__="size_bytes_bucket", le="100"} 1 @5`,
		fmt.Sprintf(`{__name__="size_bytes_bucket", le="+Inf"} 2 @5 # {trace_id="big"} 5000 @%d`, ex),
		`{__name__="size_bytes_sum"} 5050 @5`,
		`{__name__="size_bytes_count"} 2 @5`,
	})
}

func TestConvertSummaryAndUntyped(t *testing.T) {
	reg := prometheus.NewRegistry()
	s := prometheus.NewSummary(prometheus.SummaryOpts{Name: "rtt_seconds", Help: "h", Objectives: map[float64]float64{0.5: 0.05, 0.99: 0.001}})
	u := prometheus.NewUntypedFunc(prometheus.UntypedOpts{Name: "legacy", Help: "h", ConstLabels: prometheus.Labels{"zone": "a"}}, func() float64 { return 7 })
	reg.MustRegister(s, u)
	s.Observe(0.25)
	mfs, _ := reg.Gather()
	series, _ := mimir.Convert(mfs, 9, nil, map[string]string{"cluster": "c"})
	got := renderAll(series)
	sameLines(t, "series", got, []string{
		`{__name__="legacy", cluster="c", zone="a"} 7 @9`,
		`{__name__="rtt_seconds", cluster="c", quantile="0.5"} 0.25 @9`,
		`{__name__="rtt_seconds", cluster="c", quantile="0.99"} 0.25 @9`,
		`{__name__="rtt_seconds_sum", cluster="c"} 0.25 @9`,
		`{__name__="rtt_seconds_count", cluster="c"} 1 @9`,
	})
}

// received is one remote-write request as the backend saw it.
type received struct {
	header http.Header
	req    prompb.WriteRequest
}

// backend is a remote-write receiver answering what status says for the
// n-th request (1-based).
type backend struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	got    []received
	status func(n int) int
	hold   func(n int) // called before answering, e.g. to block
}

func newBackend(t *testing.T, status func(n int) int) *backend {
	b := &backend{t: t, status: status}
	b.srv = httptest.NewServer(http.HandlerFunc(b.serve))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *backend) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), 400)
		return
	}
	raw, err := snappy.Decode(nil, body)
	if err != nil {
		b.t.Errorf("request body is not snappy block encoded: %v", err)
		http.Error(w, err.Error(), 400)
		return
	}
	var wr prompb.WriteRequest
	if err := wr.Unmarshal(raw); err != nil {
		b.t.Errorf("request body is not a WriteRequest: %v", err)
		http.Error(w, err.Error(), 400)
		return
	}
	b.mu.Lock()
	b.got = append(b.got, received{header: r.Header.Clone(), req: wr})
	n := len(b.got)
	b.mu.Unlock()
	if b.hold != nil {
		b.hold(n)
	}
	code := http.StatusNoContent
	if b.status != nil {
		code = b.status(n)
	}
	if code >= 300 {
		http.Error(w, "refused by the test", code)
		return
	}
	w.WriteHeader(code)
}

func (b *backend) requests() []received {
	b.mu.Lock()
	defer b.mu.Unlock()
	return append([]received(nil), b.got...)
}

func (b *backend) count() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.got)
}

func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

type stats struct{ sent, errors, dropped uint64 }

func statsOf(e *mimir.Exporter) stats {
	return stats{e.Sent.Load(), e.Errors.Load(), e.Dropped.Load()}
}

// counters registers n counters c0..c(n-1) with values 1..n.
func counters(n int) *prometheus.Registry {
	reg := prometheus.NewRegistry()
	for i := range n {
		c := prometheus.NewCounter(prometheus.CounterOpts{Name: fmt.Sprintf("c%d_total", i), Help: "h"})
		c.Add(float64(i + 1))
		reg.MustRegister(c)
	}
	return reg
}

// start runs e until the test ends; stop cancels it and waits for Run.
func start(t *testing.T, e *mimir.Exporter) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run = %v", err)
				}
			case <-time.After(10 * time.Second):
				t.Error("Run did not return within 10s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

func TestExporterSendsSnapshot(t *testing.T) {
	b := newBackend(t, nil)
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounterVec(prometheus.CounterOpts{Name: "strata_tcp_connections_total", Help: "h"}, []string{"result"})
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "strata_tcp_active_connections", Help: "h"})
	reg.MustRegister(c, g)
	c.WithLabelValues("success").Add(42)
	c.WithLabelValues("refused").Add(3)
	g.Set(7)
	log, logs := observed()
	e, err := mimir.New(log, mimir.Config{URL: b.srv.URL + "/api/v1/push", Interval: time.Hour,
		ExternalLabels: map[string]string{"cluster": "prod", "node": "node-1"}}, reg)
	if err != nil {
		t.Fatal(err)
	}
	stop := start(t, e)
	now := time.UnixMilli(1700000000000)
	e.Snapshot(now)
	eventually(t, 3*time.Second, "one request", func() bool { return b.count() == 1 })
	eventually(t, time.Second, "Sent counted", func() bool { return e.Sent.Load() == 3 })

	r := b.requests()[0]
	sameLines(t, "series", renderAll(r.req.Timeseries), []string{
		`{__name__="strata_tcp_active_connections", cluster="prod", node="node-1"} 7 @1700000000000`,
		`{__name__="strata_tcp_connections_total", cluster="prod", node="node-1", result="refused"} 3 @1700000000000`,
		`{__name__="strata_tcp_connections_total", cluster="prod", node="node-1", result="success"} 42 @1700000000000`,
	})
	for k, v := range map[string]string{
		"Content-Encoding":                  "snappy",
		"Content-Type":                      "application/x-protobuf",
		"X-Prometheus-Remote-Write-Version": "0.1.0",
		"X-Scope-Orgid":                     "",
		"Authorization":                     "",
	} {
		if got := r.header.Get(k); got != v {
			t.Errorf("header %s = %q, want %q", k, got, v)
		}
	}
	if got := statsOf(e); got != (stats{sent: 3}) {
		t.Errorf("stats = %+v, want 3 sent", got)
	}
	if n := e.QueueLength(); n != 0 {
		t.Errorf("QueueLength = %d after sending, want 0", n)
	}

	// At exit the latest values go out once more.
	g.Set(8)
	stop()
	if n := b.count(); n != 2 {
		t.Fatalf("%d requests after Run returned, want 2 (the final snapshot)", n)
	}
	final := b.requests()[1].req.Timeseries
	if len(final) != 3 || render(final[0])[:strings.Index(render(final[0]), " @")] != `{__name__="strata_tcp_active_connections", cluster="prod", node="node-1"} 8` {
		t.Errorf("final snapshot = %v, want the gauge at 8 first", renderAll(final))
	}
	if got := statsOf(e); got != (stats{sent: 6}) {
		t.Errorf("stats after exit = %+v, want 6 sent", got)
	}
	if n := logs.Len(); n != 0 {
		t.Errorf("%d log lines from a healthy backend, want 0: %v", n, logs.All())
	}
}

func TestExporterBatches(t *testing.T) {
	b := newBackend(t, nil)
	e, err := mimir.New(zap.NewNop(), mimir.Config{URL: b.srv.URL, Interval: time.Hour, BatchSamples: 2}, counters(5))
	if err != nil {
		t.Fatal(err)
	}
	start(t, e)
	e.Snapshot(time.UnixMilli(1000))
	eventually(t, 3*time.Second, "three requests", func() bool { return b.count() == 3 && e.Sent.Load() == 5 })
	var got []string
	for _, r := range b.requests() {
		var names []string
		for _, s := range r.req.Timeseries {
			names = append(names, s.Labels[0].Value)
		}
		got = append(got, strings.Join(names, ","))
	}
	sameLines(t, "requests, oldest first", got, []string{"c0_total,c1_total", "c2_total,c3_total", "c4_total"})
}

func TestExporterTenantAndBasicAuthFromFile(t *testing.T) {
	b := newBackend(t, nil)
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("s3cret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := mimir.New(zap.NewNop(), mimir.Config{URL: b.srv.URL, Interval: time.Hour,
		HTTP: export.HTTP{Tenant: "team-a", Username: "agent", PasswordFile: pw}}, counters(1))
	if err != nil {
		t.Fatal(err)
	}
	start(t, e)
	e.Snapshot(time.Now())
	eventually(t, 3*time.Second, "first request", func() bool { return b.count() == 1 })
	// Rotate the secret: the next request carries the new one.
	if err := os.WriteFile(pw, []byte("rotated"), 0o600); err != nil {
		t.Fatal(err)
	}
	e.Snapshot(time.Now())
	eventually(t, 3*time.Second, "second request", func() bool { return b.count() == 2 })
	for i, want := range []string{"s3cret", "rotated"} {
		h := b.requests()[i].header
		req := &http.Request{Header: h}
		u, p, ok := req.BasicAuth()
		if !ok || u != "agent" || p != want {
			t.Errorf("request %d basic auth = %q %q %v, want agent %q", i, u, p, ok, want)
		}
		if got := h.Get("X-Scope-OrgID"); got != "team-a" {
			t.Errorf("request %d X-Scope-OrgID = %q, want team-a", i, got)
		}
	}
}

func TestExporterExemplarsSentOnce(t *testing.T) {
	b := newBackend(t, nil)
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "http_requests_total", Help: "h"})
	reg.MustRegister(c)
	c.(prometheus.ExemplarAdder).AddWithExemplar(1, prometheus.Labels{"trace_id": "t1"})
	e, err := mimir.New(zap.NewNop(), mimir.Config{URL: b.srv.URL, Interval: time.Hour}, reg)
	if err != nil {
		t.Fatal(err)
	}
	start(t, e)
	snap := func(want int) {
		t.Helper()
		time.Sleep(3 * time.Millisecond) // exemplars and snapshots in distinct milliseconds
		e.Snapshot(time.Now())
		eventually(t, 3*time.Second, fmt.Sprintf("request %d", want), func() bool { return b.count() == want })
	}
	snap(1)
	snap(2)
	time.Sleep(3 * time.Millisecond)
	c.(prometheus.ExemplarAdder).AddWithExemplar(1, prometheus.Labels{"trace_id": "t2"})
	snap(3)
	var got []string
	for _, r := range b.requests() {
		s := r.req.Timeseries[0]
		var ex []string
		for _, x := range s.Exemplars {
			ex = append(ex, labelString(x.Labels))
		}
		got = append(got, fmt.Sprintf("%g %s", s.Samples[0].Value, strings.Join(ex, ",")))
	}
	sameLines(t, "value and exemplars per snapshot", got, []string{`1 {trace_id="t1"}`, `1 `, `2 {trace_id="t2"}`})
}

// 500 four times, then 200: the write's own retries (3 attempts) fail, the
// sender backs off and tries again; the data arrives, each failed attempt is
// an error, nothing is dropped, and the log says so once each way.
func TestExporterRetriesServerErrors(t *testing.T) {
	b := newBackend(t, func(n int) int {
		if n <= 4 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	log, logs := observed()
	e, err := mimir.New(log, mimir.Config{URL: b.srv.URL, Interval: time.Hour}, counters(2))
	if err != nil {
		t.Fatal(err)
	}
	start(t, e)
	e.Snapshot(time.UnixMilli(5000))
	eventually(t, 6*time.Second, "the data accepted", func() bool { return e.Sent.Load() == 2 })
	if got := statsOf(e); got != (stats{sent: 2, errors: 4}) {
		t.Errorf("stats = %+v, want 2 sent, 4 errors, 0 dropped", got)
	}
	if n := b.count(); n != 5 {
		t.Errorf("%d requests, want 5", n)
	}
	for i, r := range b.requests() {
		if got := renderAll(r.req.Timeseries); strings.Join(got, ";") != `{__name__="c0_total"} 1 @5000;{__name__="c1_total"} 2 @5000` {
			t.Errorf("request %d = %v, want the same two samples each time", i, got)
		}
	}
	if n := e.QueueLength(); n != 0 {
		t.Errorf("QueueLength = %d, want 0", n)
	}
	warn := logs.FilterMessageSnippet("cannot send").All()
	if len(warn) != 1 {
		t.Fatalf("%d failure lines, want 1: %v", len(warn), warn)
	}
	if got, want := warn[0].Message, "cannot send metrics to "+b.srv.URL+"; keeping the newest samples in a queue of 100000 until it recovers"; got != want {
		t.Errorf("failure line = %q, want %q", got, want)
	}
	if got := warn[0].ContextMap()["condition"]; got != "HTTP 500" {
		t.Errorf("condition = %v, want HTTP 500", got)
	}
	ok := logs.FilterMessage("sending metrics to " + b.srv.URL + " again").All()
	if len(ok) != 1 || ok[0].ContextMap()["after"] != "HTTP 500" {
		t.Errorf("recovery lines = %v, want one after HTTP 500", ok)
	}
}

// 400 is final: one request per batch, the samples dropped, one log line for
// any number of them, and a recovery line when the backend accepts again.
func TestExporterDropsRefusedBatches(t *testing.T) {
	var mu sync.Mutex
	code := http.StatusBadRequest
	b := newBackend(t, func(int) int { mu.Lock(); defer mu.Unlock(); return code })
	log, logs := observed()
	e, err := mimir.New(log, mimir.Config{URL: b.srv.URL, Interval: time.Hour, BatchSamples: 2}, counters(3))
	if err != nil {
		t.Fatal(err)
	}
	start(t, e)
	for i := range 3 {
		e.Snapshot(time.UnixMilli(int64(1000 * (i + 1))))
	}
	// 3 snapshots of 3 samples in batches of 2+1: 6 requests.
	eventually(t, 3*time.Second, "all refused batches dropped", func() bool { return e.Dropped.Load() == 9 })
	time.Sleep(300 * time.Millisecond) // a retry would come within the remote client's 250ms backoff
	if n := b.count(); n != 6 {
		t.Errorf("%d requests for 6 refused batches, want 6 (no retries)", n)
	}
	if got := statsOf(e); got != (stats{errors: 6, dropped: 9}) {
		t.Errorf("stats = %+v, want 6 errors, 9 dropped", got)
	}
	if n := e.QueueLength(); n != 0 {
		t.Errorf("QueueLength = %d, want 0", n)
	}

	mu.Lock()
	code = http.StatusNoContent
	mu.Unlock()
	e.Snapshot(time.UnixMilli(4000))
	eventually(t, 3*time.Second, "accepted again", func() bool { return e.Sent.Load() == 3 })
	if got := statsOf(e); got != (stats{sent: 3, errors: 6, dropped: 9}) {
		t.Errorf("stats = %+v, want 3 sent, 6 errors, 9 dropped", got)
	}
	warn := logs.FilterMessageSnippet("cannot send").All()
	if len(warn) != 1 {
		t.Fatalf("%d failure lines for 6 refusals, want 1: %v", len(warn), warn)
	}
	if got, want := warn[0].Message, "cannot send metrics to "+b.srv.URL+"; dropping the samples it refuses until it recovers"; got != want {
		t.Errorf("failure line = %q, want %q", got, want)
	}
	if got := warn[0].ContextMap()["condition"]; got != "HTTP 400" {
		t.Errorf("condition = %v, want HTTP 400", got)
	}
	if !strings.Contains(fmt.Sprint(warn[0].ContextMap()["error"]), "refused by the test") {
		t.Errorf("error = %v, want the backend's answer in it", warn[0].ContextMap()["error"])
	}
	ok := logs.FilterMessage("sending metrics to " + b.srv.URL + " again").All()
	if len(ok) != 1 || ok[0].ContextMap()["after"] != "HTTP 400" {
		t.Errorf("recovery lines = %v, want one after HTTP 400", ok)
	}
	if n := logs.Len(); n != 2 {
		t.Errorf("%d log lines, want 2: %v", n, logs.All())
	}
}

// closedURL is an address nothing listens on.
func closedURL(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String() + "/api/v1/push"
	l.Close()
	return u
}

// With the backend down the queue keeps the newest samples within its bound
// and counts exactly what it sheds.
func TestExporterQueueBound(t *testing.T) {
	e, err := mimir.New(zap.NewNop(), mimir.Config{URL: closedURL(t), Interval: time.Hour,
		QueueSamples: 7, BatchSamples: 2, Timeout: time.Second}, counters(5))
	if err != nil {
		t.Fatal(err)
	}
	// No sender runs: nothing leaves the queue but by shedding.

	// The model: batches of 2, 2, 1 samples per snapshot; the oldest go first.
	var queue []int
	queued, dropped := 0, 0
	for i := range 10 {
		e.Snapshot(time.UnixMilli(int64(1000 * (i + 1))))
		for _, n := range []int{2, 2, 1} {
			queue = append(queue, n)
			queued += n
			for queued > 7 {
				queued -= queue[0]
				dropped += queue[0]
				queue = queue[1:]
			}
		}
		if got := e.QueueLength(); got != queued || got > 7 {
			t.Fatalf("after snapshot %d: QueueLength = %d, want %d (bound 7)", i+1, got, queued)
		}
		if got := e.Dropped.Load(); got != uint64(dropped) {
			t.Fatalf("after snapshot %d: Dropped = %d, want %d", i+1, got, dropped)
		}
	}
	if got := e.Sent.Load(); got != 0 {
		t.Errorf("Sent = %d with no backend", got)
	}
	if dropped+queued != 50 {
		t.Fatalf("model: %d dropped + %d queued != 50 produced", dropped, queued)
	}
}

// A snapshot larger than the whole queue keeps only its newest batches.
func TestExporterSnapshotLargerThanQueue(t *testing.T) {
	e, err := mimir.New(zap.NewNop(), mimir.Config{URL: closedURL(t), QueueSamples: 3, BatchSamples: 2}, counters(5))
	if err != nil {
		t.Fatal(err)
	}
	e.Snapshot(time.UnixMilli(1))
	// The newest snapshot is kept whole, even over the bound: shedding part
	// of it would lose some series entirely.
	if got, dropped := e.QueueLength(), e.Dropped.Load(); got != 5 || dropped != 0 {
		t.Errorf("QueueLength = %d, Dropped = %d; want 5 and 0", got, dropped)
	}
	// The next one sheds the whole older one.
	e.Snapshot(time.UnixMilli(2))
	if got, dropped := e.QueueLength(), e.Dropped.Load(); got != 5 || dropped != 5 {
		t.Errorf("QueueLength = %d, Dropped = %d; want 5 and 5", got, dropped)
	}
}

// A backend that refuses connections is one condition, however many attempts
// fail: one line, not one per write.
func TestExporterBackendDownLogsOnce(t *testing.T) {
	log, logs := observed()
	url := closedURL(t)
	e, err := mimir.New(log, mimir.Config{URL: url, Interval: time.Hour, Timeout: time.Second}, counters(1))
	if err != nil {
		t.Fatal(err)
	}
	start(t, e)
	e.Snapshot(time.Now())
	// One write is 3 attempts (the remote client's 2 retries); the sender
	// then backs off 1s and writes again.
	eventually(t, 6*time.Second, "two writes failed", func() bool { return e.Errors.Load() >= 4 })
	if got := statsOf(e); got.sent != 0 || got.dropped != 0 {
		t.Errorf("stats = %+v, want nothing sent or dropped", got)
	}
	if n := e.QueueLength(); n != 1 {
		t.Errorf("QueueLength = %d, want the 1 sample kept", n)
	}
	warn := logs.FilterMessageSnippet("cannot send").All()
	var conds []string
	for _, w := range warn {
		conds = append(conds, fmt.Sprint(w.ContextMap()["condition"]))
	}
	if len(warn) != 1 || conds[0] != "connection refused" {
		t.Errorf("failure lines with conditions %q for one outage, want exactly one, \"connection refused\"", conds)
	}

	// The backend comes back on the same address: the kept sample arrives
	// and the recovery is logged once.
	b := newBackendAt(t, strings.TrimPrefix(strings.TrimSuffix(url, "/api/v1/push"), "http://"))
	eventually(t, 5*time.Second, "the kept sample sent", func() bool { return e.Sent.Load() == 1 })
	if b.count() != 1 || e.QueueLength() != 0 {
		t.Errorf("%d requests, QueueLength %d; want 1 and 0", b.count(), e.QueueLength())
	}
	ok := logs.FilterMessage("sending metrics to " + url + " again").All()
	if len(ok) != 1 || ok[0].ContextMap()["after"] != "connection refused" {
		t.Errorf("recovery lines = %v, want one after connection refused", ok)
	}
}

// newBackendAt serves on a given address, e.g. one that refused before.
func newBackendAt(t *testing.T, addr string) *backend {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("listening again on %s: %v", addr, err)
	}
	b := &backend{t: t}
	b.srv = httptest.NewUnstartedServer(http.HandlerFunc(b.serve))
	b.srv.Listener.Close()
	b.srv.Listener = l
	b.srv.Start()
	t.Cleanup(b.srv.Close)
	return b
}

// The oldest batch may be shed while the sender is writing it. If the
// backend then accepts it, it was sent, not dropped: every sample is counted
// once, as sent or as dropped.
func TestExporterShedWhileSendingCountsOnce(t *testing.T) {
	release := make(chan struct{})
	inFlight := make(chan struct{}, 1)
	b := newBackend(t, nil)
	b.hold = func(n int) {
		if n == 1 {
			inFlight <- struct{}{}
			<-release
		}
	}
	e, err := mimir.New(zap.NewNop(), mimir.Config{URL: b.srv.URL, Interval: time.Hour, QueueSamples: 2}, counters(2))
	if err != nil {
		t.Fatal(err)
	}
	start(t, e)
	e.Snapshot(time.UnixMilli(1000))
	select {
	case <-inFlight:
	case <-time.After(3 * time.Second):
		t.Fatal("first write never arrived")
	}
	e.Snapshot(time.UnixMilli(2000)) // 4 samples > 2: the oldest, in flight, is shed
	close(release)
	eventually(t, 3*time.Second, "second write", func() bool { return b.count() == 2 })
	time.Sleep(100 * time.Millisecond)
	delivered := 0
	for _, r := range b.requests() {
		for _, s := range r.req.Timeseries {
			delivered += len(s.Samples)
		}
	}
	got := statsOf(e)
	if delivered != 4 {
		t.Fatalf("backend received %d samples, want 4", delivered)
	}
	if got.sent != 4 || got.sent+got.dropped != 4 {
		t.Errorf("stats = %+v for 4 samples produced and 4 accepted; want sent 4, dropped 0 (each sample counted once)", got)
	}
}

// Cancelling Run while the backend is down and samples wait must not hang:
// the sender stops, the final snapshot gets one bounded attempt, Run returns.
func TestExporterRunReturnsWhileBackendDown(t *testing.T) {
	e, err := mimir.New(zap.NewNop(), mimir.Config{URL: closedURL(t), Interval: time.Hour, Timeout: time.Second}, counters(2))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	e.Snapshot(time.Now())
	eventually(t, 3*time.Second, "a failed attempt", func() bool { return e.Errors.Load() > 0 })
	cancel()
	t0 := time.Now()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Run = %v", err)
		}
	case <-time.After(7 * time.Second): // the final push is bounded by 5s
		t.Fatalf("Run still running 7s after its context ended, with %d errors counted (the sender retries with a cancelled context)", e.Errors.Load())
	}
	t.Logf("Run returned %v after cancel", time.Since(t0))
	if got := e.QueueLength(); got != 4 {
		t.Errorf("QueueLength = %d after exit, want 4 (two snapshots of 2 kept, unsent)", got)
	}
}
