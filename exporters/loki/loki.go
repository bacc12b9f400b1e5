// Package loki pushes connection events (failed connects, resets,
// retransmit bursts, DNS and HTTP errors) to Grafana Loki as logfmt lines.
//
// Streams stay few: job, cluster, node, the source namespace and the event
// kind; everything with many values (identities, addresses) is in the line.
// Each stream is rate-limited, so a storm of resets becomes a trickle of
// lines that say how many were suppressed. Events wait in a bounded queue in
// front of the Loki client: a slow or dead Loki drops and counts events, it
// never blocks the agent.
package loki

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/go-logfmt/logfmt"
	"github.com/grafana/loki-client-go/loki"
	"github.com/grafana/loki-client-go/pkg/backoff"
	"github.com/grafana/loki-client-go/pkg/labelutil"
	"github.com/grafana/loki-client-go/pkg/urlutil"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/model"
	"go.uber.org/zap"

	"github.com/stratanet/strata/agent/emit"
	"github.com/stratanet/strata/exporters/export"
)

// Config of the exporter.
type Config struct {
	URL       string // the push endpoint, e.g. http://loki:3100/loki/api/v1/push
	HTTP      export.HTTP
	Labels    map[string]string // cluster, node
	Queue     int               // events waiting at most
	Rate      float64           // lines per second per stream, sustained
	Burst     int               // lines a stream may send at once
	BatchWait time.Duration
	Timeout   time.Duration // per request
}

// Exporter is the Loki exporter.
type Exporter struct {
	log    *zap.Logger
	cfg    Config
	lc     *loki.Client
	host   string // the client's own metrics are labelled with it
	queue  chan emit.Event
	health *export.Health

	mu      sync.Mutex
	streams map[stream]*bucket
	client  Stats // the Loki client's counters, as last read

	queueDropped, limited atomic.Uint64 // ours; the client counts the rest
}

type stream struct{ kind, namespace string }

// bucket is a token bucket, plus what it refused since its last line.
type bucket struct {
	tokens     float64
	at         time.Time
	suppressed int
}

// maxStreams bounds the rate limiter's memory; namespaces come and go.
const maxStreams = 4096

func New(log *zap.Logger, cfg Config) (*Exporter, error) {
	if cfg.Queue <= 0 {
		cfg.Queue = 10000
	}
	if cfg.Rate <= 0 {
		cfg.Rate = 10
	}
	if cfg.Burst <= 0 {
		cfg.Burst = 100
	}
	if cfg.BatchWait <= 0 {
		cfg.BatchWait = time.Second
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 10 * time.Second
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("loki URL %q: want the push endpoint, http(s)://host:port%s", cfg.URL, pushPaths)
	}
	labels := model.LabelSet{"job": "strata"}
	for k, v := range cfg.Labels {
		if v != "" {
			labels[model.LabelName(k)] = model.LabelValue(v)
		}
	}
	e := &Exporter{log: log, cfg: cfg, host: u.Host, queue: make(chan emit.Event, cfg.Queue), streams: map[stream]*bucket{},
		health: export.NewHealth(log, "events to "+cfg.URL)}
	lc := loki.Config{
		URL:       urlutil.URLValue{URL: u},
		BatchWait: cfg.BatchWait,
		BatchSize: 1 << 20,
		Client:    cfg.HTTP.ClientConfig(),
		// Retry until Loki answers, holding one batch; meanwhile the queue
		// in front fills and drops. Any 4xx but 429 drops the batch at once.
		BackoffConfig:  backoff.BackoffConfig{MinBackoff: 500 * time.Millisecond, MaxBackoff: 10 * time.Second, MaxRetries: 0},
		ExternalLabels: labelutil.LabelSet{LabelSet: labels},
		Timeout:        cfg.Timeout,
		TenantID:       cfg.HTTP.Tenant,
	}
	if e.lc, err = loki.NewWithLogger(lc, clientLog{e}); err != nil {
		return nil, fmt.Errorf("loki client: %w", err)
	}
	return e, nil
}

// Push queues an event unless its stream is over its rate or the queue is
// full; false when it was dropped (and counted).
func (e *Exporter) Push(ev emit.Event) bool {
	s := stream{ev.Kind, ev.Namespace}
	now := ev.Time
	e.mu.Lock()
	b := e.streams[s]
	if b == nil {
		if len(e.streams) >= maxStreams {
			clear(e.streams)
		}
		b = &bucket{tokens: float64(e.cfg.Burst), at: now}
		e.streams[s] = b
	}
	b.tokens = min(float64(e.cfg.Burst), b.tokens+now.Sub(b.at).Seconds()*e.cfg.Rate)
	b.at = now
	if b.tokens < 1 {
		b.suppressed++
		e.mu.Unlock()
		e.limited.Add(1)
		return false
	}
	b.tokens--
	suppressed := b.suppressed
	b.suppressed = 0
	e.mu.Unlock()
	if suppressed > 0 { // say what the limit hid
		ev.Fields = append(ev.Fields[:len(ev.Fields):len(ev.Fields)], "suppressed", strconv.Itoa(suppressed)) // the caller's array stays as it was
	}
	select {
	case e.queue <- ev:
		return true
	default:
		e.queueDropped.Add(1)
		return false
	}
}

// Line is the event as Loki stores it.
func Line(ev emit.Event) string {
	b, err := logfmt.MarshalKeyvals(toAny(ev.Fields)...)
	if err != nil {
		return fmt.Sprintf("msg=%q", err.Error())
	}
	return string(b)
}

func toAny(fields []string) []any {
	out := make([]any, len(fields))
	for i, f := range fields {
		out[i] = f
	}
	return out
}

// QueueLength is how many events wait.
func (e *Exporter) QueueLength() int { return len(e.queue) }

// Run hands queued events to the client until ctx ends.
func (e *Exporter) Run(ctx context.Context) error {
	// Handle blocks while the client retries; progress is watched apart.
	go func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var sent uint64
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				// Entries sent mean Loki is answering again.
				if s := e.Stats().Sent; s > sent {
					sent = s
					e.health.OK()
				}
			}
		}
	}()
	// The client's Handle blocks while it retries a batch, so events are
	// fed to it apart and shutdown never waits on a dead Loki.
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case ev := <-e.queue:
				labels := model.LabelSet{"event": model.LabelValue(ev.Kind)}
				if ev.Namespace != "" {
					labels["namespace"] = model.LabelValue(ev.Namespace)
				}
				e.lc.Handle(labels, ev.Time, Line(ev))
			}
		}
	}()
	<-ctx.Done()
	// The client sends the batch it holds; what never reached it is lost,
	// and counted.
	for len(e.queue) > 0 {
		<-e.queue
		e.queueDropped.Add(1)
	}
	stopped := make(chan struct{})
	go func() { e.lc.Stop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second): // well inside a pod's grace period
	}
	return nil
}

// Stats are the exporter's counters: the client's (entries sent, failed
// requests, batches it gave up on) plus the queue's and the limiter's drops.
func (e *Exporter) Stats() Stats {
	e.readClient()
	e.mu.Lock()
	s := e.client
	e.mu.Unlock()
	s.Dropped += e.queueDropped.Load() + e.limited.Load()
	return s
}

// Stats of the exporter.
type Stats struct{ Sent, Errors, Dropped uint64 }

// Limited is how many events the per-stream rate limit suppressed.
func (e *Exporter) Limited() uint64 { return e.limited.Load() }

// readClient reads the counters the Loki client keeps in the default
// registry, for this exporter's host.
func (e *Exporter) readClient() {
	mfs, _ := prometheus.DefaultGatherer.Gather()
	var c Stats
	for _, mf := range mfs {
		for _, m := range mf.Metric {
			if label(m, "host") != e.host {
				continue
			}
			switch mf.GetName() {
			case "promtail_sent_entries_total":
				c.Sent = uint64(m.GetCounter().GetValue())
			case "promtail_dropped_entries_total":
				c.Dropped = uint64(m.GetCounter().GetValue())
			case "promtail_request_duration_seconds":
				if code := label(m, "status_code"); len(code) != 3 || code[0] != '2' {
					c.Errors += m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	e.mu.Lock()
	e.client = c
	e.mu.Unlock()
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.Label {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// pushPaths names the push endpoints of the servers that take Loki's API.
const pushPaths = "/loki/api/v1/push (Loki) or /insert/loki/api/v1/push (VictoriaLogs)"

// hint says what a refusal usually means, so the one line reporting it
// tells a user what to fix.
func hint(status int) string {
	switch status {
	case http.StatusNotFound, http.StatusMethodNotAllowed:
		return "is the URL the push endpoint? " + pushPaths
	case http.StatusUnauthorized, http.StatusForbidden:
		return "check --loki-username/--loki-password-file or --loki-bearer-token-file"
	case http.StatusBadRequest:
		return "a refused tenant or payload; VictoriaLogs takes only numeric tenants (--loki-tenant 42)"
	}
	return ""
}

// clientLog receives the Loki client's go-kit log lines and turns failures
// into one line per condition.
type clientLog struct{ e *Exporter }

func (l clientLog) Log(keyvals ...any) error {
	var msg string
	var status int
	var err error
	for i := 0; i+1 < len(keyvals); i += 2 {
		switch keyvals[i] {
		case "msg":
			msg, _ = keyvals[i+1].(string)
		case "status":
			status, _ = keyvals[i+1].(int)
		case "error":
			err, _ = keyvals[i+1].(error)
		}
	}
	if err == nil {
		return nil
	}
	if status > 0 {
		err = &export.StatusError{Code: status, Body: err.Error(), Hint: hint(status)}
	}
	switch msg {
	case "error sending batch, will retry":
		l.e.health.Failed(err, "holding one batch and queueing up to "+strconv.Itoa(l.e.cfg.Queue)+" events")
	case "final error sending batch":
		l.e.health.Failed(err, "dropping the events it refuses")
	default:
		l.e.log.Debug("loki client: "+msg, zap.Error(err))
	}
	return nil
}
