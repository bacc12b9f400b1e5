package export

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// refusedErr dials a port nothing listens on and returns the real error.
func refusedErr(t *testing.T) error {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	c, err := net.Dial("tcp", addr)
	if err == nil {
		c.Close()
		t.Fatalf("dial %s succeeded after its listener closed", addr)
	}
	return err
}

// httpTimeoutErr is what an http.Client with a Timeout returns when the
// server is too slow.
func httpTimeoutErr(t *testing.T) error {
	t.Helper()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(release)
	c := &http.Client{Timeout: 50 * time.Millisecond}
	resp, err := c.Get(srv.URL)
	if err == nil {
		resp.Body.Close()
		t.Fatal("a server that never answers answered")
	}
	return err
}

func TestRetryableAndCondition(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		retryable bool
		condition string
	}{
		{"400", &StatusError{Code: 400, Body: "bad tenant"}, false, "HTTP 400"},
		{"401", &StatusError{Code: 401}, false, "HTTP 401"},
		{"404", &StatusError{Code: 404}, false, "HTTP 404"},
		{"429", &StatusError{Code: 429}, true, "HTTP 429"},
		{"500", &StatusError{Code: 500}, true, "HTTP 500"},
		{"503 wrapped", fmt.Errorf("push: %w", &StatusError{Code: 503}), true, "HTTP 503"},
		{"ECONNREFUSED bare", syscall.ECONNREFUSED, true, "connection refused"},
		{"ECONNREFUSED from a dial", refusedErr(t), true, "connection refused"},
		{"ECONNREFUSED wrapped", fmt.Errorf("post: %w", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", syscall.ECONNREFUSED)}), true, "connection refused"},
		{"deadline", context.DeadlineExceeded, true, "timeout"},
		{"deadline wrapped", fmt.Errorf("write: %w", context.DeadlineExceeded), true, "timeout"},
		{"http client timeout", httpTimeoutErr(t), true, "timeout"},
		{"ECONNRESET", fmt.Errorf("read: %w", syscall.ECONNRESET), true, "connection reset"},
		{"gRPC unavailable", status.Error(codes.Unavailable, "connection error"), true, "gRPC Unavailable"},
		{"gRPC deadline", fmt.Errorf("export timeout: %w", status.Error(codes.DeadlineExceeded, "context deadline exceeded")), true, "timeout"},
		{"gRPC permission", status.Error(codes.PermissionDenied, "no"), true, "gRPC PermissionDenied"},
		{"gRPC unknown", status.Error(codes.Unknown, "?"), true, "error"},
		{"DNS", &net.DNSError{Err: "no such host", Name: "mimir.example", IsNotFound: true}, true, "DNS: no such host"},
		{"other", errors.New("boom"), true, "error"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Retryable(tc.err); got != tc.retryable {
				t.Errorf("Retryable(%v) = %v, want %v", tc.err, got, tc.retryable)
			}
			if got := Condition(tc.err); got != tc.condition {
				t.Errorf("Condition(%v) = %q, want %q", tc.err, got, tc.condition)
			}
		})
	}
}

func TestStatusErrorText(t *testing.T) {
	err := &StatusError{Code: 429, Body: "slow down"}
	if got, want := err.Error(), "HTTP 429 Too Many Requests: slow down"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	err = &StatusError{Code: 500, Body: ""}
	if got, want := err.Error(), "HTTP 500 Internal Server Error: "; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

func TestClientConfig(t *testing.T) {
	c := HTTP{Username: "u", PasswordFile: "/p", CAFile: "/ca"}.ClientConfig()
	if c.EnableHTTP2 {
		t.Error("EnableHTTP2 = true, want false")
	}
	if c.BasicAuth == nil || c.BasicAuth.Username != "u" || c.BasicAuth.PasswordFile != "/p" {
		t.Errorf("BasicAuth = %+v, want username u, password file /p", c.BasicAuth)
	}
	if c.Authorization != nil {
		t.Errorf("Authorization = %+v, want none", c.Authorization)
	}
	if c.TLSConfig.CAFile != "/ca" {
		t.Errorf("CAFile = %q, want /ca", c.TLSConfig.CAFile)
	}
	c = HTTP{BearerTokenFile: "/t"}.ClientConfig()
	if c.BasicAuth != nil {
		t.Errorf("BasicAuth = %+v, want none", c.BasicAuth)
	}
	if c.Authorization == nil || c.Authorization.Type != "Bearer" || c.Authorization.CredentialsFile != "/t" {
		t.Errorf("Authorization = %+v, want Bearer from /t", c.Authorization)
	}
}

type seen struct {
	tenant, auth, user, pass string
	basic                    bool
}

func recorder(t *testing.T) (*httptest.Server, func() []seen) {
	var mu sync.Mutex
	var got []seen
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		u, p, ok := r.BasicAuth()
		mu.Lock()
		got = append(got, seen{tenant: r.Header.Get("X-Scope-OrgID"), auth: r.Header.Get("Authorization"), user: u, pass: p, basic: ok})
		mu.Unlock()
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv, func() []seen {
		mu.Lock()
		defer mu.Unlock()
		return append([]seen(nil), got...)
	}
}

func get(t *testing.T, c *http.Client, url string) {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("status %d", resp.StatusCode)
	}
}

func TestClientTenantAndRotatedPassword(t *testing.T) {
	srv, got := recorder(t)
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("first\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := HTTP{Tenant: "team-a", Username: "agent", PasswordFile: pw}.Client("test")
	if err != nil {
		t.Fatal(err)
	}
	get(t, c, srv.URL)
	// A rotated secret is picked up by the next request, without a new client.
	if err := os.WriteFile(pw, []byte("second"), 0o600); err != nil {
		t.Fatal(err)
	}
	get(t, c, srv.URL)
	want := []seen{
		{tenant: "team-a", user: "agent", pass: "first", basic: true},
		{tenant: "team-a", user: "agent", pass: "second", basic: true},
	}
	g := got()
	if len(g) != len(want) {
		t.Fatalf("requests = %+v, want %+v", g, want)
	}
	for i := range want {
		g[i].auth = "" // the encoded form of user and pass
		if g[i] != want[i] {
			t.Errorf("request %d = %+v, want %+v", i, g[i], want[i])
		}
	}
}

func TestClientBearerTokenNoTenant(t *testing.T) {
	srv, got := recorder(t)
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("abc123\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := HTTP{BearerTokenFile: tok}.Client("test")
	if err != nil {
		t.Fatal(err)
	}
	get(t, c, srv.URL)
	g := got()
	if len(g) != 1 || g[0] != (seen{auth: "Bearer abc123"}) {
		t.Errorf("requests = %+v, want one with Authorization \"Bearer abc123\" and no tenant", g)
	}
}

func TestClientTenantDoesNotTouchCallersRequest(t *testing.T) {
	srv, _ := recorder(t)
	c, err := HTTP{Tenant: "t1"}.Client("test")
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequest(http.MethodGet, srv.URL, nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if h := req.Header.Get("X-Scope-OrgID"); h != "" {
		t.Errorf("the caller's request got X-Scope-OrgID %q; RoundTrippers must not modify it", h)
	}
}

func TestHealthLogsOncePerCondition(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	h := NewHealth(zap.New(core), "metrics to http://mimir/push")
	if h.Failing() != "" {
		t.Fatalf("Failing() = %q before any failure", h.Failing())
	}
	h.OK() // healthy already: nothing to say
	for range 5 {
		h.Failed(syscall.ECONNREFUSED, "keeping them")
	}
	if got := h.Failing(); got != "connection refused" {
		t.Errorf("Failing() = %q, want %q", got, "connection refused")
	}
	for range 3 {
		h.Failed(&StatusError{Code: 503}, "keeping them")
	}
	h.Failed(&StatusError{Code: 503}, "a different consequence is the same condition")
	if got := h.Failing(); got != "HTTP 503" {
		t.Errorf("Failing() = %q, want %q", got, "HTTP 503")
	}
	h.OK()
	h.OK()
	if h.Failing() != "" {
		t.Errorf("Failing() = %q after OK, want \"\"", h.Failing())
	}
	h.Failed(syscall.ECONNREFUSED, "keeping them") // the same kind again after a recovery speaks again

	type line struct {
		level             zapcore.Level
		msg, field, value string
	}
	want := []line{
		{zapcore.WarnLevel, "cannot send metrics to http://mimir/push; keeping them until it recovers", "condition", "connection refused"},
		{zapcore.WarnLevel, "cannot send metrics to http://mimir/push; keeping them until it recovers", "condition", "HTTP 503"},
		{zapcore.InfoLevel, "sending metrics to http://mimir/push again", "after", "HTTP 503"},
		{zapcore.WarnLevel, "cannot send metrics to http://mimir/push; keeping them until it recovers", "condition", "connection refused"},
	}
	all := logs.All()
	if len(all) != len(want) {
		for _, e := range all {
			t.Logf("%s %s %v", e.Level, e.Message, e.ContextMap())
		}
		t.Fatalf("%d log lines, want %d", len(all), len(want))
	}
	for i, w := range want {
		e := all[i]
		if e.Level != w.level || e.Message != w.msg || e.ContextMap()[w.field] != w.value {
			t.Errorf("line %d = %s %q %v, want %s %q %s=%q", i, e.Level, e.Message, e.ContextMap(), w.level, w.msg, w.field, w.value)
		}
	}
	if got := all[1].ContextMap()["error"]; !strings.Contains(fmt.Sprint(got), "HTTP 503 Service Unavailable") {
		t.Errorf("error field = %v, want the StatusError text", got)
	}
}

func TestHealthConcurrent(t *testing.T) {
	core, logs := observer.New(zapcore.DebugLevel)
	h := NewHealth(zap.New(core), "x")
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 100 {
				h.Failed(&StatusError{Code: 500}, "keeping")
			}
		})
	}
	wg.Wait()
	if n := logs.FilterMessageSnippet("cannot send").Len(); n != 1 {
		t.Errorf("%d failure lines from 800 concurrent failures of one kind, want 1", n)
	}
}
