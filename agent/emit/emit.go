// Package emit is what aggregation hands on besides metrics: events (one
// log line each) and request spans, and the two small interfaces it hands
// them to. It belongs to neither side: aggregation (agent/flow, httpflow,
// dnsflow) writes these types, exporters (exporters/loki, exporters/tempo)
// read them, and neither imports the other.
package emit

import "time"

// Event kinds; exporters/loki makes each a stream label.
const (
	ConnectFailed   = "connect_failed"
	Reset           = "reset"
	RetransmitBurst = "retransmit_burst"
	DNSError        = "dns_error"
	HTTPError       = "http_error"
)

// Event is one connection event: a log line.
type Event struct {
	Time      time.Time
	Kind      string
	Namespace string   // the source's namespace ("" outside Kubernetes)
	Fields    []string // keys and values, in order
}

// Events is where events go. Push never blocks: it drops and counts when it
// must, and says so (false).
type Events interface{ Push(Event) bool }

// Span is one observed request.
type Span struct {
	TraceID  [16]byte
	SpanID   [8]byte
	ParentID [8]byte // zero for a root span
	Name     string
	Server   bool
	Start    time.Time
	End      time.Time
	Resource Resource
	Attrs    map[string]any // string or int64 values
	Error    bool
}

// Resource says who produced a span.
type Resource struct {
	Service   string // the workload
	Namespace string
	Cluster   string
}

// Spans is where spans go; like Events, Export never blocks.
type Spans interface{ Export(Span) bool }
