package tempo_test

import (
	"context"
	"encoding/hex"
	"fmt"
	"net"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	coltracepb "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/stratanet/strata/agent/emit"
	"github.com/stratanet/strata/exporters/tempo"
)

// collector is an in-process OTLP trace receiver.
type collector struct {
	coltracepb.UnimplementedTraceServiceServer
	addr string

	mu   sync.Mutex
	reqs []*coltracepb.ExportTraceServiceRequest
	md   []metadata.MD
	fail func(n int) error                // the answer to the n-th export (1-based); nil accepts
	hold func(ctx context.Context, n int) // called before answering
}

func (c *collector) Export(ctx context.Context, req *coltracepb.ExportTraceServiceRequest) (*coltracepb.ExportTraceServiceResponse, error) {
	md, _ := metadata.FromIncomingContext(ctx)
	c.mu.Lock()
	c.reqs = append(c.reqs, req)
	c.md = append(c.md, md)
	n := len(c.reqs)
	fail, hold := c.fail, c.hold
	c.mu.Unlock()
	if hold != nil {
		hold(ctx, n)
	}
	if fail != nil {
		if err := fail(n); err != nil {
			return nil, err
		}
	}
	return &coltracepb.ExportTraceServiceResponse{}, nil
}

func (c *collector) requests() ([]*coltracepb.ExportTraceServiceRequest, []metadata.MD) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*coltracepb.ExportTraceServiceRequest(nil), c.reqs...), append([]metadata.MD(nil), c.md...)
}

func (c *collector) spans() int {
	reqs, _ := c.requests()
	n := 0
	for _, r := range reqs {
		for _, rs := range r.ResourceSpans {
			for _, ss := range rs.ScopeSpans {
				n += len(ss.Spans)
			}
		}
	}
	return n
}

func newCollector(t *testing.T, setup func(*collector)) *collector {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	c := &collector{addr: l.Addr().String()}
	if setup != nil {
		setup(c)
	}
	s := grpc.NewServer()
	coltracepb.RegisterTraceServiceServer(s, c)
	go s.Serve(l)
	t.Cleanup(s.Stop)
	return c
}

func closedAddr(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	a := l.Addr().String()
	l.Close()
	return a
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

func run(t *testing.T, e *tempo.Exporter) (stop func()) {
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
			case <-time.After(8 * time.Second):
				t.Error("Run did not return within 8s of its context ending")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

type stats struct{ sent, errors, dropped uint64 }

func statsOf(e *tempo.Exporter) stats {
	return stats{e.Sent.Load(), e.Errors.Load(), e.Dropped.Load()}
}

func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

// attrString renders attributes sorted by key.
func attrString(kvs []*commonpb.KeyValue) string {
	var parts []string
	for _, kv := range kvs {
		switch v := kv.Value.Value.(type) {
		case *commonpb.AnyValue_StringValue:
			parts = append(parts, fmt.Sprintf("%s=%q", kv.Key, v.StringValue))
		case *commonpb.AnyValue_IntValue:
			parts = append(parts, fmt.Sprintf("%s=%d", kv.Key, v.IntValue))
		default:
			parts = append(parts, fmt.Sprintf("%s=%v", kv.Key, kv.Value))
		}
	}
	sort.Strings(parts)
	return "{" + strings.Join(parts, " ") + "}"
}

func spanString(s *tracepb.Span) string {
	return fmt.Sprintf("%s %s parent=%s %q %s %d..%d %s status=%s", hex.EncodeToString(s.TraceId), hex.EncodeToString(s.SpanId),
		hex.EncodeToString(s.ParentSpanId), s.Name, s.Kind, s.StartTimeUnixNano, s.EndTimeUnixNano, attrString(s.Attributes), s.GetStatus().GetCode())
}

func id16(b byte) (id [16]byte) {
	for i := range id {
		id[i] = b
	}
	return id
}

func id8(b byte) (id [8]byte) {
	for i := range id {
		id[i] = b
	}
	return id
}

func TestSpansArriveGroupedByResource(t *testing.T) {
	c := newCollector(t, nil)
	log, logs := observed()
	e, err := tempo.New(log, tempo.Config{Endpoint: c.addr, Insecure: true, BatchSize: 3, Interval: time.Hour,
		Headers: map[string]string{"X-Scope-OrgID": "team-a"}})
	if err != nil {
		t.Fatal(err)
	}
	checkout := emit.Resource{Service: "checkout", Namespace: "shop", Cluster: "prod"}
	t0 := time.Unix(1700000000, 5)
	spans := []emit.Span{
		{TraceID: id16(1), SpanID: id8(2), Name: "GET /cart", Server: true, Start: t0, End: t0.Add(time.Millisecond),
			Resource: checkout, Attrs: map[string]any{"http.request.method": "GET", "http.response.status_code": int64(200), "ignored": 1.5}},
		{TraceID: id16(3), SpanID: id8(4), ParentID: id8(5), Name: "POST /pay", Start: t0, End: t0.Add(2 * time.Second),
			Resource: emit.Resource{Service: "curl"}, Attrs: map[string]any{"http.response.status_code": 503}, Error: true},
		{TraceID: id16(1), SpanID: id8(6), ParentID: id8(2), Name: "GET /stock", Start: t0.Add(time.Microsecond), End: t0.Add(time.Millisecond),
			Resource: checkout},
	}
	for _, s := range spans {
		if !e.Export(s) {
			t.Fatal("Export refused with an empty queue")
		}
	}
	run(t, e)
	eventually(t, 5*time.Second, "3 spans sent", func() bool { return e.Sent.Load() == 3 })
	reqs, mds := c.requests()
	if len(reqs) != 1 {
		t.Fatalf("%d export requests, want 1", len(reqs))
	}
	if got := mds[0].Get("x-scope-orgid"); len(got) != 1 || got[0] != "team-a" {
		t.Errorf("metadata x-scope-orgid = %q, want [team-a]", got)
	}
	var got []string
	for _, rs := range reqs[0].ResourceSpans {
		got = append(got, "resource "+attrString(rs.Resource.Attributes))
		for _, ss := range rs.ScopeSpans {
			got = append(got, "scope "+ss.Scope.GetName())
			for _, s := range ss.Spans {
				got = append(got, spanString(s))
			}
		}
	}
	want := []string{
		`resource {k8s.cluster.name="prod" k8s.namespace.name="shop" service.name="checkout"}`,
		`scope strata`,
		`01010101010101010101010101010101 0202020202020202 parent= "GET /cart" SPAN_KIND_SERVER 1700000000000000005..1700000000001000005 {http.request.method="GET" http.response.status_code=200} status=STATUS_CODE_UNSET`,
		`01010101010101010101010101010101 0606060606060606 parent=0202020202020202 "GET /stock" SPAN_KIND_CLIENT 1700000000000001005..1700000000001000005 {} status=STATUS_CODE_UNSET`,
		`resource {service.name="curl"}`,
		`scope strata`,
		`03030303030303030303030303030303 0404040404040404 parent=0505050505050505 "POST /pay" SPAN_KIND_CLIENT 1700000000000000005..1700000002000000005 {http.response.status_code=503} status=STATUS_CODE_ERROR`,
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("export:\ngot\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
	if s := statsOf(e); s != (stats{sent: 3}) {
		t.Errorf("stats = %+v, want 3 sent", s)
	}
	if logs.Len() != 0 {
		t.Errorf("log lines from a healthy backend: %v", logs.All())
	}
}

func TestIntervalFlushesPartialBatch(t *testing.T) {
	c := newCollector(t, nil)
	e, err := tempo.New(zap.NewNop(), tempo.Config{Endpoint: c.addr, Insecure: true, BatchSize: 100, Interval: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, e)
	e.Export(emit.Span{TraceID: id16(9), SpanID: id8(9), Name: "x", Resource: emit.Resource{Service: "a"}})
	eventually(t, 3*time.Second, "the lone span sent by the interval", func() bool { return c.spans() == 1 && e.Sent.Load() == 1 })
}

func TestFullQueueDrops(t *testing.T) {
	e, err := tempo.New(zap.NewNop(), tempo.Config{Endpoint: closedAddr(t), Insecure: true, Queue: 2})
	if err != nil {
		t.Fatal(err)
	}
	var got []bool
	for i := range 5 {
		got = append(got, e.Export(emit.Span{Name: fmt.Sprint(i)}))
	}
	if fmt.Sprint(got) != "[true true false false false]" {
		t.Errorf("Export results = %v, want [true true false false false]", got)
	}
	if s := statsOf(e); s != (stats{dropped: 3}) {
		t.Errorf("stats = %+v, want 3 dropped", s)
	}
	if n := e.QueueLength(); n != 2 {
		t.Errorf("QueueLength = %d, want 2", n)
	}
}

// A refusal the client does not retry: the batch is dropped and counted, the
// condition logged once; the next accepted batch logs the recovery.
func TestRejectedBatchDroppedThenRecovers(t *testing.T) {
	c := newCollector(t, func(c *collector) {
		c.fail = func(n int) error {
			if n <= 2 {
				return status.Error(codes.PermissionDenied, "tenant not allowed")
			}
			return nil
		}
	})
	log, logs := observed()
	e, err := tempo.New(log, tempo.Config{Endpoint: c.addr, Insecure: true, BatchSize: 2, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	run(t, e)
	for i := range 4 {
		e.Export(emit.Span{TraceID: id16(1), SpanID: id8(byte(i + 1)), Name: "a", Resource: emit.Resource{Service: "s"}})
	}
	eventually(t, 5*time.Second, "two batches refused", func() bool { return e.Dropped.Load() == 4 })
	if s := statsOf(e); s != (stats{errors: 2, dropped: 4}) {
		t.Errorf("stats = %+v, want 2 errors, 4 dropped", s)
	}
	for i := range 2 {
		e.Export(emit.Span{TraceID: id16(2), SpanID: id8(byte(i + 1)), Name: "b", Resource: emit.Resource{Service: "s"}})
	}
	eventually(t, 5*time.Second, "the third batch accepted", func() bool { return e.Sent.Load() == 2 })
	if s := statsOf(e); s != (stats{sent: 2, errors: 2, dropped: 4}) {
		t.Errorf("stats = %+v, want 2 sent, 2 errors, 4 dropped", s)
	}
	reqs, _ := c.requests()
	if len(reqs) != 3 {
		t.Errorf("%d export requests, want 3 (no retry of PermissionDenied)", len(reqs))
	}
	var got []string
	for _, en := range logs.All() {
		got = append(got, fmt.Sprintf("%s %s %v %v", en.Level, en.Message, en.ContextMap()["condition"], en.ContextMap()["after"]))
	}
	want := []string{
		"warn cannot send spans to " + c.addr + "; dropping them until it recovers gRPC PermissionDenied <nil>",
		"info sending spans to " + c.addr + " again <nil> gRPC PermissionDenied",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("log:\ngot\n\t%s\nwant\n\t%s", strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

// Nothing listens: the upload fails (the client retries until the context
// ends), the batch is counted as an error and its spans as dropped, and the
// log says so once.
func TestUnavailableBackendCounted(t *testing.T) {
	log, logs := observed()
	addr := closedAddr(t)
	e, err := tempo.New(log, tempo.Config{Endpoint: addr, Insecure: true, BatchSize: 10, Interval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		e.Export(emit.Span{TraceID: id16(1), SpanID: id8(byte(i + 1)), Name: "a", Resource: emit.Resource{Service: "s"}})
	}
	stop := run(t, e)
	eventually(t, 3*time.Second, "the spans taken into a batch", func() bool { return e.QueueLength() == 0 })
	time.Sleep(300 * time.Millisecond) // the interval has started the upload
	stop()
	if s := statsOf(e); s != (stats{errors: 1, dropped: 3}) {
		t.Errorf("stats = %+v, want 1 error, 3 dropped", s)
	}
	// Said once, at the first attempt: the client retries Unavailable.
	warn := logs.FilterMessage("cannot send spans to " + addr + "; retrying each batch for up to 15s, then dropping its spans, until it recovers").All()
	if len(warn) != 1 {
		t.Fatalf("failure lines = %v, want 1", logs.All())
	}
	if got := warn[0].ContextMap()["condition"]; got != "gRPC Unavailable" {
		t.Errorf("condition = %v, want gRPC Unavailable (error %v)", got, warn[0].ContextMap()["error"])
	}
}

// At exit Run "flushes what is queued": with a healthy backend every queued
// span is sent, and none is lost without being counted.
func TestShutdownFlushesWholeQueue(t *testing.T) {
	entered := make(chan struct{}, 1)
	c := newCollector(t, func(c *collector) {
		c.hold = func(ctx context.Context, n int) {
			if n == 1 { // the first upload hangs until the exporter gives up on it
				entered <- struct{}{}
				<-ctx.Done()
			}
		}
	})
	e, err := tempo.New(zap.NewNop(), tempo.Config{Endpoint: c.addr, Insecure: true, BatchSize: 2, Queue: 100, Interval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	stop := run(t, e)
	for i := range 2 {
		e.Export(emit.Span{TraceID: id16(1), SpanID: id8(byte(i + 1)), Name: "first", Resource: emit.Resource{Service: "s"}})
	}
	select {
	case <-entered:
	case <-time.After(5 * time.Second):
		t.Fatal("first upload never arrived")
	}
	for i := range 10 {
		e.Export(emit.Span{TraceID: id16(2), SpanID: id8(byte(i + 1)), Name: "queued", Resource: emit.Resource{Service: "s"}})
	}
	if n := e.QueueLength(); n != 10 {
		t.Fatalf("QueueLength = %d, want 10 behind the hanging upload", n)
	}
	stop()
	s := statsOf(e)
	t.Logf("after exit: stats %+v, %d spans received, %d still queued", s, c.spans()-2, e.QueueLength())
	if s.sent+s.dropped != 12 {
		t.Errorf("sent %d + dropped %d = %d of 12 spans exported; %d vanished uncounted (QueueLength %d after Run returned)",
			s.sent, s.dropped, s.sent+s.dropped, 12-s.sent-s.dropped, e.QueueLength())
	}
	if s.sent != 10 {
		t.Errorf("sent %d of the 10 queued spans at exit to a healthy backend, want 10", s.sent)
	}
}
