package loki

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/grafana/loki/pkg/push"
	"github.com/klauspost/compress/snappy"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/stratanet/strata/agent/emit"
	"github.com/stratanet/strata/exporters/export"
)

// unusedURL is a push URL on a port nothing listens on, so each exporter has
// its own host label in the Loki client's metrics.
func unusedURL(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	u := "http://" + l.Addr().String() + "/loki/api/v1/push"
	l.Close()
	return u
}

// queued takes what waits in the queue, without a Run.
func queued(e *Exporter) []emit.Event {
	var out []emit.Event
	for {
		select {
		case ev := <-e.queue:
			out = append(out, ev)
		default:
			return out
		}
	}
}

func lines(evs []emit.Event) []string {
	out := make([]string, len(evs))
	for i, ev := range evs {
		out[i] = Line(ev)
	}
	return out
}

func same(t *testing.T, what string, got, want []string) {
	t.Helper()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("%s:\ngot\n\t%s\nwant\n\t%s", what, strings.Join(got, "\n\t"), strings.Join(want, "\n\t"))
	}
}

func TestRateLimitPerStream(t *testing.T) {
	e, err := New(zap.NewNop(), Config{URL: unusedURL(t), Rate: 2, Burst: 3})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	ev := func(at time.Duration, kind, ns string, i int) emit.Event {
		return emit.Event{Time: t0.Add(at), Kind: kind, Namespace: ns, Fields: []string{"n", fmt.Sprint(i)}}
	}
	var admitted []bool
	// A storm of 10 resets in shop at one instant: the burst of 3 passes.
	for i := range 10 {
		admitted = append(admitted, e.Push(ev(0, emit.Reset, "shop", i)))
	}
	// Other streams have their own buckets: another namespace, another kind.
	admitted = append(admitted, e.Push(ev(0, emit.Reset, "billing", 100)))
	admitted = append(admitted, e.Push(ev(0, emit.ConnectFailed, "shop", 101)))
	// 0.25s later half a token has come back: still refused.
	admitted = append(admitted, e.Push(ev(250*time.Millisecond, emit.Reset, "shop", 10)))
	// 0.5s after the storm one token is back: admitted, saying what was hidden.
	admitted = append(admitted, e.Push(ev(500*time.Millisecond, emit.Reset, "shop", 11)))
	admitted = append(admitted, e.Push(ev(500*time.Millisecond, emit.Reset, "shop", 12)))
	// A long quiet refills the bucket only up to the burst.
	for i := range 5 {
		admitted = append(admitted, e.Push(ev(time.Hour, emit.Reset, "shop", 20+i)))
	}

	want := []bool{true, true, true, false, false, false, false, false, false, false, // storm
		true, true, // other streams
		false,       // half a token
		true, false, // one token
		true, true, true, false, false, // refilled to 3
	}
	if fmt.Sprint(admitted) != fmt.Sprint(want) {
		t.Errorf("admitted = %v\nwant       %v", admitted, want)
	}
	if got := e.Limited(); got != 11 {
		t.Errorf("Limited = %d, want 11", got)
	}
	if got := e.Stats(); got != (Stats{Dropped: 11}) {
		t.Errorf("Stats = %+v, want the 11 suppressed counted as dropped", got)
	}
	if got := e.QueueLength(); got != 9 {
		t.Errorf("QueueLength = %d, want 9", got)
	}
	same(t, "queued lines", lines(queued(e)), []string{
		"n=0", "n=1", "n=2",
		"n=100", "n=101",
		"n=11 suppressed=8", // 7 of the storm and the one 0.25s later
		"n=20 suppressed=1", // the one refused at 0.5s
		"n=21", "n=22",
	})
}

func TestQueueFullDropsAndCounts(t *testing.T) {
	e, err := New(zap.NewNop(), Config{URL: unusedURL(t), Queue: 2, Burst: 100, Rate: 100})
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1000, 0)
	var got []bool
	for i := range 5 {
		got = append(got, e.Push(emit.Event{Time: t0, Kind: emit.DNSError, Fields: []string{"i", fmt.Sprint(i)}}))
	}
	if fmt.Sprint(got) != "[true true false false false]" {
		t.Errorf("Push results = %v, want [true true false false false]", got)
	}
	if s := e.Stats(); s != (Stats{Dropped: 3}) {
		t.Errorf("Stats = %+v, want 3 dropped", s)
	}
	if e.Limited() != 0 {
		t.Errorf("Limited = %d, want 0: the queue dropped them, not the limit", e.Limited())
	}
	if n := e.QueueLength(); n != 2 {
		t.Errorf("QueueLength = %d, want 2", n)
	}
	same(t, "kept, oldest first", lines(queued(e)), []string{"i=0", "i=1"})
}

func TestLine(t *testing.T) {
	for _, tc := range []struct {
		fields []string
		want   string
	}{
		{[]string{"source_workload", "checkout", "error", "refused"}, "source_workload=checkout error=refused"},
		{[]string{"source_workload", "my app", "route", "GET /a b"}, `source_workload="my app" route="GET /a b"`},
		{[]string{"msg", `say "hi"`}, `msg="say \"hi\""`},
		{[]string{"q", `a=b`, "empty", ""}, `q="a=b" empty=`},
		{[]string{"nl", "line\nbreak", "tab", "a\tb"}, `nl="line\nbreak" tab="a\tb"`},
		{[]string{"path", `C:\dir`}, `path=C:\dir`}, // a backslash alone needs no quotes
		{[]string{"odd"}, "odd=null"},
		{nil, ""},
	} {
		if got := Line(emit.Event{Fields: tc.fields}); got != tc.want {
			t.Errorf("Line(%q) = %q, want %q", tc.fields, got, tc.want)
		}
	}
}

func TestNewRejectsBadURL(t *testing.T) {
	for _, u := range []string{"", "loki:3100", "://x"} {
		_, err := New(zap.NewNop(), Config{URL: u})
		want := fmt.Sprintf("loki URL %q: want the push endpoint, http(s)://host:port/loki/api/v1/push (Loki) or /insert/loki/api/v1/push (VictoriaLogs)", u)
		if err == nil || err.Error() != want {
			t.Errorf("New(%q) = %v, want %q", u, err, want)
		}
	}
}

// lokiServer decodes Loki pushes (snappy-compressed protobuf).
type lokiServer struct {
	t      *testing.T
	srv    *httptest.Server
	mu     sync.Mutex
	pushes []pushed
	status func(n int) int
}

type pushed struct {
	header http.Header
	req    push.PushRequest
}

func newLoki(t *testing.T, status func(n int) int) *lokiServer {
	s := &lokiServer{t: t, status: status}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		raw, err := snappy.Decode(nil, body)
		if err != nil {
			t.Errorf("push body is not snappy: %v", err)
			http.Error(w, err.Error(), 400)
			return
		}
		var pr push.PushRequest
		if err := pr.Unmarshal(raw); err != nil {
			t.Errorf("push body is not a PushRequest: %v", err)
			http.Error(w, err.Error(), 400)
			return
		}
		s.mu.Lock()
		s.pushes = append(s.pushes, pushed{r.Header.Clone(), pr})
		n := len(s.pushes)
		s.mu.Unlock()
		code := http.StatusNoContent
		if s.status != nil {
			code = s.status(n)
		}
		if code >= 300 {
			http.Error(w, "refused by the test", code)
			return
		}
		w.WriteHeader(code)
	}))
	t.Cleanup(s.srv.Close)
	return s
}

func (s *lokiServer) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.pushes)
}

func (s *lokiServer) all() []pushed {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]pushed(nil), s.pushes...)
}

// entries renders every pushed entry as "labels ts line", sorted.
func (s *lokiServer) entries() []string {
	var out []string
	for _, p := range s.all() {
		for _, st := range p.req.Streams {
			for _, en := range st.Entries {
				out = append(out, fmt.Sprintf("%s %d %s", st.Labels, en.Timestamp.UnixNano(), en.Line))
			}
		}
	}
	sort.Strings(out)
	return out
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

func run(t *testing.T, e *Exporter) (stop func()) {
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

func observed() (*zap.Logger, *observer.ObservedLogs) {
	core, logs := observer.New(zapcore.DebugLevel)
	return zap.New(core), logs
}

func TestPushesToLoki(t *testing.T) {
	l := newLoki(t, nil)
	pw := filepath.Join(t.TempDir(), "password")
	if err := os.WriteFile(pw, []byte("hunter2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	log, logs := observed()
	e, err := New(log, Config{URL: l.srv.URL + "/loki/api/v1/push", BatchWait: 20 * time.Millisecond,
		Labels: map[string]string{"cluster": "prod", "node": "node-1", "empty": ""},
		HTTP:   export.HTTP{Tenant: "team-a", Username: "agent", PasswordFile: pw}})
	if err != nil {
		t.Fatal(err)
	}
	run(t, e)
	t0 := time.Unix(1700000000, 123456789)
	for _, ev := range []emit.Event{
		{Time: t0, Kind: emit.ConnectFailed, Namespace: "shop", Fields: []string{"source_workload", "checkout", "destination_workload", "payments db", "error", "refused"}},
		{Time: t0.Add(time.Millisecond), Kind: emit.Reset, Fields: []string{"source_workload", "curl", "direction", "received"}},
		{Time: t0.Add(2 * time.Millisecond), Kind: emit.HTTPError, Namespace: "shop", Fields: []string{"route", "GET /cart", "status", "503"}},
	} {
		if !e.Push(ev) {
			t.Fatalf("Push(%v) refused", ev)
		}
	}
	eventually(t, 5*time.Second, "3 entries sent", func() bool { return e.Stats().Sent == 3 })
	same(t, "entries", l.entries(), []string{
		`{cluster="prod", event="connect_failed", job="strata", namespace="shop", node="node-1"} 1700000000123456789 source_workload=checkout destination_workload="payments db" error=refused`,
		`{cluster="prod", event="http_error", job="strata", namespace="shop", node="node-1"} 1700000000125456789 route="GET /cart" status=503`,
		`{cluster="prod", event="reset", job="strata", node="node-1"} 1700000000124456789 source_workload=curl direction=received`,
	})
	for i, p := range l.all() {
		if got := p.header.Get("X-Scope-OrgID"); got != "team-a" {
			t.Errorf("push %d X-Scope-OrgID = %q, want team-a", i, got)
		}
		if got := p.header.Get("Content-Type"); got != "application/x-protobuf" {
			t.Errorf("push %d Content-Type = %q", i, got)
		}
		u, pass, ok := (&http.Request{Header: p.header}).BasicAuth()
		if !ok || u != "agent" || pass != "hunter2" {
			t.Errorf("push %d basic auth = %q %q %v, want agent hunter2", i, u, pass, ok)
		}
	}
	if s := e.Stats(); s != (Stats{Sent: 3}) {
		t.Errorf("Stats = %+v, want 3 sent", s)
	}
	if logs.Len() != 0 {
		t.Errorf("log lines from a healthy Loki: %v", logs.All())
	}
}

// 400 is final: one attempt, the entries dropped, one line for the condition.
func TestRefusedBatchDroppedAfterOneAttempt(t *testing.T) {
	l := newLoki(t, func(int) int { return http.StatusBadRequest })
	log, logs := observed()
	e, err := New(log, Config{URL: l.srv.URL + "/loki/api/v1/push", BatchWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, e)
	t0 := time.Unix(1700000000, 0)
	e.Push(emit.Event{Time: t0, Kind: emit.Reset, Fields: []string{"a", "1"}})
	e.Push(emit.Event{Time: t0, Kind: emit.Reset, Fields: []string{"a", "2"}})
	eventually(t, 5*time.Second, "the batch dropped", func() bool { return e.Stats().Dropped == 2 })
	time.Sleep(700 * time.Millisecond) // a retry would come after the 500ms minimum backoff
	if n := l.count(); n != 1 {
		t.Errorf("%d pushes, want 1 (no retry of a 400)", n)
	}
	if s := e.Stats(); s != (Stats{Errors: 1, Dropped: 2}) {
		t.Errorf("Stats = %+v, want 1 error, 2 dropped", s)
	}
	warn := logs.FilterMessageSnippet("cannot send").All()
	if len(warn) != 1 {
		t.Fatalf("failure lines = %v, want 1", warn)
	}
	if got, want := warn[0].Message, "cannot send events to "+l.srv.URL+"/loki/api/v1/push; dropping the events it refuses until it recovers"; got != want {
		t.Errorf("failure line = %q, want %q", got, want)
	}
	if got := warn[0].ContextMap()["condition"]; got != "HTTP 400" {
		t.Errorf("condition = %v, want HTTP 400", got)
	}
}

// 500 is retried with the batch held; once Loki answers the entries arrive,
// the failed attempt is an error, nothing is dropped, and the recovery is
// logged even while Stats is read all the time (as the agent's metrics do).
func TestServerErrorRetriedThenRecovers(t *testing.T) {
	l := newLoki(t, func(n int) int {
		if n == 1 {
			return http.StatusServiceUnavailable
		}
		return http.StatusNoContent
	})
	log, logs := observed()
	e, err := New(log, Config{URL: l.srv.URL + "/loki/api/v1/push", BatchWait: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	run(t, e)
	e.Push(emit.Event{Time: time.Unix(1700000000, 0), Kind: emit.Reset, Fields: []string{"a", "1"}})
	eventually(t, 5*time.Second, "the entry sent", func() bool { return e.Stats().Sent == 1 })
	eventually(t, 3*time.Second, "the recovery logged", func() bool {
		e.Stats()
		return logs.FilterMessageSnippet("again").Len() > 0
	})
	if s := e.Stats(); s != (Stats{Sent: 1, Errors: 1}) {
		t.Errorf("Stats = %+v, want 1 sent, 1 error", s)
	}
	if n := l.count(); n != 2 {
		t.Errorf("%d pushes, want 2", n)
	}
	same(t, "entries", l.entries(), []string{
		`{event="reset", job="strata"} 1700000000000000000 a=1`,
		`{event="reset", job="strata"} 1700000000000000000 a=1`,
	})
	var got []string
	for _, en := range logs.All() {
		got = append(got, fmt.Sprintf("%s %s %v", en.Level, en.Message, en.ContextMap()["condition"]))
	}
	same(t, "log", got, []string{
		"warn cannot send events to " + l.srv.URL + "/loki/api/v1/push; holding one batch and queueing up to 10000 events until it recovers HTTP 503",
		"info sending events to " + l.srv.URL + "/loki/api/v1/push again <nil>",
	})
}

// A dead Loki must not keep the agent from exiting: Run returns within its
// own bound (5s) even while the client holds a batch and the next event
// waits to be handed over.
func TestRunReturnsWhileLokiDown(t *testing.T) {
	l := newLoki(t, func(int) int { return http.StatusServiceUnavailable })
	e, err := New(zap.NewNop(), Config{URL: l.srv.URL + "/loki/api/v1/push", BatchWait: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	t0 := time.Unix(1700000000, 0)
	e.Push(emit.Event{Time: t0, Kind: emit.Reset, Fields: []string{"a", "1"}})
	eventually(t, 3*time.Second, "the first push refused", func() bool { return l.count() >= 1 })
	// The client now retries its batch; these wait for it.
	e.Push(emit.Event{Time: t0, Kind: emit.Reset, Fields: []string{"a", "2"}})
	e.Push(emit.Event{Time: t0, Kind: emit.Reset, Fields: []string{"a", "3"}})
	eventually(t, time.Second, "the next event taken from the queue", func() bool { return e.QueueLength() == 1 })
	cancel()
	select {
	case <-done:
	case <-time.After(7 * time.Second):
		t.Fatal("Run still running 7s after its context ended: it is blocked handing an event to a client that retries forever")
	}
}
