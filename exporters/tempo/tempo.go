// Package tempo sends request spans over OTLP gRPC (Grafana Tempo, or any
// OTLP trace backend). Spans wait in a bounded queue; a full queue drops
// and counts, never blocks the agent.
package tempo

import (
	"context"
	"fmt"
	"time"

	"go.opentelemetry.io/otel/exporters/otlp/otlptrace"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	commonpb "go.opentelemetry.io/proto/otlp/common/v1"
	resourcepb "go.opentelemetry.io/proto/otlp/resource/v1"
	tracepb "go.opentelemetry.io/proto/otlp/trace/v1"
	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/stratanet/strata/agent/emit"
	"github.com/stratanet/strata/exporters/export"
)

// Config of the exporter.
type Config struct {
	Endpoint  string            // host:port
	Insecure  bool              // plaintext gRPC
	CAFile    string            // trust this CA (else the system's)
	Headers   map[string]string // e.g. X-Scope-OrgID, authorization
	Queue     int               // spans waiting at most
	BatchSize int               // spans per upload at most
	Interval  time.Duration     // longest a span waits for its batch
}

// Exporter uploads spans from its own goroutine.
type Exporter struct {
	log    *zap.Logger
	cfg    Config
	client otlptrace.Client
	queue  chan emit.Span

	export.Stats // spans sent and dropped (full queue or failed upload); failed uploads
	health       *export.Health
}

func New(log *zap.Logger, cfg Config) (*Exporter, error) {
	if cfg.Queue <= 0 {
		cfg.Queue = 4096
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 512
	}
	if cfg.Interval <= 0 {
		cfg.Interval = time.Second
	}
	e := &Exporter{log: log, cfg: cfg, queue: make(chan emit.Span, cfg.Queue), health: export.NewHealth(log, "spans to "+cfg.Endpoint)}
	opts := []otlptracegrpc.Option{otlptracegrpc.WithEndpoint(cfg.Endpoint), otlptracegrpc.WithTimeout(10 * time.Second),
		// The queue is ours; the client must not hold batches for minutes.
		otlptracegrpc.WithRetry(otlptracegrpc.RetryConfig{Enabled: true, InitialInterval: time.Second, MaxInterval: 5 * time.Second, MaxElapsedTime: retryFor}),
		otlptracegrpc.WithDialOption(grpc.WithUnaryInterceptor(e.attempt))}
	switch {
	case cfg.Insecure:
		opts = append(opts, otlptracegrpc.WithInsecure())
	case cfg.CAFile != "":
		creds, err := credentials.NewClientTLSFromFile(cfg.CAFile, "")
		if err != nil {
			return nil, fmt.Errorf("otlp CA: %w", err)
		}
		opts = append(opts, otlptracegrpc.WithTLSCredentials(creds))
	}
	if len(cfg.Headers) > 0 {
		opts = append(opts, otlptracegrpc.WithHeaders(cfg.Headers))
	}
	e.client = otlptracegrpc.NewClient(opts...)
	return e, nil
}

// retryFor is how long the client retries a batch before it is dropped.
const retryFor = 15 * time.Second

// attempt sees each upload attempt. A failure the client will retry is
// said here, once per condition: retries that ride out an outage would
// otherwise hide it, and its end, from the log.
func (e *Exporter) attempt(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoke grpc.UnaryInvoker, opts ...grpc.CallOption) error {
	err := invoke(ctx, method, req, reply, cc, opts...)
	if err != nil && retried(err) {
		e.health.Failed(err, "retrying each batch for up to "+retryFor.String()+", then dropping its spans,")
	}
	return err
}

// retried says whether the OTLP client retries an attempt that failed so
// (the gRPC codes the OTLP specification calls retryable).
func retried(err error) bool {
	switch status.Code(err) {
	case codes.Canceled, codes.DeadlineExceeded, codes.Aborted, codes.OutOfRange, codes.Unavailable, codes.DataLoss:
		return true
	}
	return false
}

// Export queues a span; false when the queue is full (the span is counted
// as dropped).
func (e *Exporter) Export(s emit.Span) bool {
	select {
	case e.queue <- s:
		return true
	default:
		e.Dropped.Add(1)
		return false
	}
}

// QueueLength is how many spans wait.
func (e *Exporter) QueueLength() int { return len(e.queue) }

// Run uploads batches until ctx ends, then flushes what is queued.
func (e *Exporter) Run(ctx context.Context) error {
	if err := e.client.Start(ctx); err != nil {
		// Spans are not worth stopping the agent for.
		e.log.Error("cannot start the OTLP client; no spans will be sent", zap.Error(err))
		return nil
	}
	tick := time.NewTicker(e.cfg.Interval)
	defer tick.Stop()
	batch := make([]emit.Span, 0, e.cfg.BatchSize)
	flush := func(ctx context.Context) {
		if len(batch) == 0 {
			return
		}
		if err := e.client.UploadTraces(ctx, toProto(batch)); err != nil {
			e.Errors.Add(1)
			e.Dropped.Add(uint64(len(batch)))
			e.health.Failed(err, "dropping them")
		} else {
			e.Sent.Add(uint64(len(batch)))
			e.health.OK()
		}
		batch = batch[:0]
	}
	for {
		select {
		case s := <-e.queue:
			batch = append(batch, s)
			if len(batch) == e.cfg.BatchSize && ctx.Err() == nil {
				flush(ctx)
			}
		case <-tick.C:
			flush(ctx)
		case <-ctx.Done():
			// Send what is queued, batch by batch, while the time lasts;
			// count the rest.
			drain, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			for drain.Err() == nil && (len(batch) > 0 || len(e.queue) > 0) {
				for len(e.queue) > 0 && len(batch) < e.cfg.BatchSize {
					batch = append(batch, <-e.queue)
				}
				flush(drain)
			}
			left := uint64(len(batch))
			for len(e.queue) > 0 {
				<-e.queue
				left++
			}
			e.Dropped.Add(left)
			e.client.Stop(drain)
			cancel()
			return nil
		}
	}
}

// toProto groups spans by resource, as OTLP wants them.
func toProto(spans []emit.Span) []*tracepb.ResourceSpans {
	by := map[emit.Resource]*tracepb.ScopeSpans{}
	var out []*tracepb.ResourceSpans
	for i := range spans {
		s := &spans[i]
		ss := by[s.Resource]
		if ss == nil {
			ss = &tracepb.ScopeSpans{Scope: &commonpb.InstrumentationScope{Name: "strata"}}
			by[s.Resource] = ss
			out = append(out, &tracepb.ResourceSpans{Resource: resource(s.Resource), ScopeSpans: []*tracepb.ScopeSpans{ss}})
		}
		kind := tracepb.Span_SPAN_KIND_CLIENT
		if s.Server {
			kind = tracepb.Span_SPAN_KIND_SERVER
		}
		p := &tracepb.Span{
			TraceId:           s.TraceID[:],
			SpanId:            s.SpanID[:],
			Name:              s.Name,
			Kind:              kind,
			StartTimeUnixNano: uint64(s.Start.UnixNano()),
			EndTimeUnixNano:   uint64(s.End.UnixNano()),
			Attributes:        attrs(s.Attrs),
		}
		if s.ParentID != [8]byte{} {
			p.ParentSpanId = s.ParentID[:]
		}
		if s.Error {
			p.Status = &tracepb.Status{Code: tracepb.Status_STATUS_CODE_ERROR}
		}
		ss.Spans = append(ss.Spans, p)
	}
	return out
}

func resource(r emit.Resource) *resourcepb.Resource {
	a := map[string]any{"service.name": r.Service}
	if r.Namespace != "" {
		a["k8s.namespace.name"] = r.Namespace
	}
	if r.Cluster != "" {
		a["k8s.cluster.name"] = r.Cluster
	}
	return &resourcepb.Resource{Attributes: attrs(a)}
}

func attrs(m map[string]any) []*commonpb.KeyValue {
	out := make([]*commonpb.KeyValue, 0, len(m))
	for k, v := range m {
		var av *commonpb.AnyValue
		switch v := v.(type) {
		case string:
			av = &commonpb.AnyValue{Value: &commonpb.AnyValue_StringValue{StringValue: v}}
		case int64:
			av = &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: v}}
		case int:
			av = &commonpb.AnyValue{Value: &commonpb.AnyValue_IntValue{IntValue: int64(v)}}
		default:
			continue
		}
		out = append(out, &commonpb.KeyValue{Key: k, Value: av})
	}
	return out
}
