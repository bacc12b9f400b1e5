// Package export is what the pushing exporters share: the counters the agent
// reports for each, a log that speaks once per condition rather than once
// per request, and HTTP client settings (tenant, auth from files, TLS).
package export

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"

	promconfig "github.com/prometheus/common/config"
	"go.uber.org/zap"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Stats are one exporter's counters, read by the agent's health metrics.
type Stats struct {
	Sent    atomic.Uint64 // items the backend accepted
	Errors  atomic.Uint64 // failed sends (each attempt)
	Dropped atomic.Uint64 // items given up on: full queue, rejected, rate-limited
}

// Health logs a backend's condition when it changes: the first failure of a
// kind, a different failure, and the recovery. A backend down for an hour
// writes three lines, not thousands.
type Health struct {
	log  *zap.Logger
	what string // e.g. "metrics to Mimir at http://..."

	mu      sync.Mutex
	current string // "" when healthy
}

func NewHealth(log *zap.Logger, what string) *Health { return &Health{log: log, what: what} }

// Failed records a failed send and whether the items were dropped or kept.
func (h *Health) Failed(err error, consequence string) {
	c := Condition(err)
	h.mu.Lock()
	defer h.mu.Unlock()
	if c == h.current {
		return
	}
	h.current = c
	h.log.Warn("cannot send "+h.what+"; "+consequence+" until it recovers", zap.String("condition", c), zap.Error(err))
}

// OK records a successful send.
func (h *Health) OK() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.current != "" {
		h.log.Info("sending "+h.what+" again", zap.String("after", h.current))
		h.current = ""
	}
}

// Failing reports the current condition, "" when healthy.
func (h *Health) Failing() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.current
}

// StatusError is an HTTP answer other than 2xx.
type StatusError struct {
	Code int
	Body string
	Hint string // what the answer usually means here, for the one line that reports it
}

func (e *StatusError) Error() string {
	msg := fmt.Sprintf("HTTP %d %s: %s", e.Code, http.StatusText(e.Code), e.Body)
	if e.Hint != "" {
		msg += " (" + e.Hint + ")"
	}
	return msg
}

// Retryable says whether sending the same data again can succeed: network
// errors, 5xx and 429 can; any other 4xx cannot (bad tenant, auth, payload).
func Retryable(err error) bool {
	var se *StatusError
	if errors.As(err, &se) {
		return se.Code == http.StatusTooManyRequests || se.Code >= 500
	}
	return true
}

// Condition names the kind of failure, the unit the log speaks once for.
func Condition(err error) string {
	var se *StatusError
	var ne net.Error
	switch {
	case errors.As(err, &se):
		return fmt.Sprintf("HTTP %d", se.Code)
	case errors.Is(err, syscall.ECONNREFUSED):
		return "connection refused"
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout(),
		status.Code(err) == codes.DeadlineExceeded: // gRPC's word for it
		return "timeout"
	case errors.Is(err, syscall.ECONNRESET):
		return "connection reset"
	}
	if st, ok := status.FromError(err); ok && st.Code() != codes.OK && st.Code() != codes.Unknown {
		return "gRPC " + st.Code().String()
	}
	var de *net.DNSError
	if errors.As(err, &de) {
		return "DNS: " + de.Err
	}
	return "error"
}

// HTTP is how an exporter reaches its backend. Secrets come from files
// (Kubernetes Secrets mounted into the pod), re-read on every request so a
// rotated token is picked up without a restart.
type HTTP struct {
	Tenant          string // X-Scope-OrgID
	Username        string // basic auth, with PasswordFile
	PasswordFile    string
	BearerTokenFile string
	CAFile          string // trust this CA for https (else the system's)
}

// ClientConfig is the Prometheus HTTP client configuration for h, the form
// both the remote-write and the Loki client take.
func (h HTTP) ClientConfig() promconfig.HTTPClientConfig {
	c := promconfig.DefaultHTTPClientConfig
	c.EnableHTTP2 = false
	if h.Username != "" {
		c.BasicAuth = &promconfig.BasicAuth{Username: h.Username, PasswordFile: h.PasswordFile}
	}
	if h.BearerTokenFile != "" {
		c.Authorization = &promconfig.Authorization{Type: "Bearer", CredentialsFile: h.BearerTokenFile}
	}
	c.TLSConfig.CAFile = h.CAFile
	return c
}

// Client builds an *http.Client for h, adding the tenant header.
func (h HTTP) Client(name string) (*http.Client, error) {
	c, err := promconfig.NewClientFromConfig(h.ClientConfig(), name, promconfig.WithHTTP2Disabled())
	if err != nil {
		return nil, err
	}
	if h.Tenant != "" {
		c.Transport = tenant{c.Transport, h.Tenant}
	}
	return c, nil
}

type tenant struct {
	next http.RoundTripper
	id   string
}

func (t tenant) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("X-Scope-OrgID", t.id)
	return t.next.RoundTrip(r)
}
