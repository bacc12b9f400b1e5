package httpflow

import (
	"strconv"
	"testing"

	"github.com/stratanet/strata/agent/flow"
)

// records is strata_agent_http_records_total by outcome.
func records(t *testing.T, tb *Table) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	for _, m := range gather(t, tb)["strata_agent_http_records_total"].GetMetric() {
		out[m.GetLabel()[0].GetValue()] = m.GetCounter().GetValue()
	}
	return out
}

func wantRecords(t *testing.T, tb *Table, unpaired, malformed, dropped float64) {
	t.Helper()
	got := records(t, tb)
	if got["unpaired"] != unpaired || got["malformed"] != malformed || got["dropped"] != dropped {
		t.Errorf("records %v, want unpaired %v, malformed %v, dropped %v", got, unpaired, malformed, dropped)
	}
}

const serverSeries = "strata_http_server_request_duration_seconds"

// The N+1th socket with a request in flight is not followed: its request
// is counted as dropped, its response finds nothing to pair with.
func TestMaxSockets(t *testing.T) {
	const n = 5
	opts := DefaultOptions()
	opts.MaxSockets = n
	tb := New(names, nil, nil, wall, "", opts)
	for s := uint64(1); s <= n+1; s++ {
		tb.Apply(req(s, 10*s, "GET /a HTTP/1.1\r\n"))
	}
	if len(tb.socks) != n {
		t.Fatalf("%d sockets followed, want %d", len(tb.socks), n)
	}
	wantRecords(t, tb, 0, 0, 1)
	for s := uint64(1); s <= n+1; s++ {
		tb.Apply(resp(s, 10*s+5, "HTTP/1.1 200 OK\r\n"))
	}
	if got := count(gather(t, tb), serverSeries, map[string]string{"route": "/a"}); got != n {
		t.Errorf("%d requests counted, want %d", got, n)
	}
	wantRecords(t, tb, 1, 0, 1)
	// Answered, the sockets stay followed (keep-alive): one more still has
	// no room until an idle sweep or a close frees one.
	tb.Closed(1, 100)
	tb.Apply(req(n+1, 200, "GET /a HTTP/1.1\r\n"))
	tb.Apply(resp(n+1, 205, "HTTP/1.1 200 OK\r\n"))
	if got := count(gather(t, tb), serverSeries, map[string]string{"route": "/a"}); got != n+1 {
		t.Errorf("after a close made room: %d requests counted, want %d", got, n+1)
	}
	wantRecords(t, tb, 1, 0, 1)
}

// The N+1th socket whose exchanges the kernel counts is not followed: its
// opening exchange and every count that follows on it are dropped, counted.
func TestMaxTalliedSockets(t *testing.T) {
	const n = 3
	opts := DefaultOptions()
	opts.MaxSockets = n
	tb := New(names, nil, nil, wall, "", opts)
	for s := uint64(1); s <= n+1; s++ {
		tb.Apply(opening(s, 100+s, 1, "GET /t HTTP/1.1\r\n", 200))
	}
	if len(tb.tallies) != n {
		t.Fatalf("%d tallied sockets, want %d", len(tb.tallies), n)
	}
	for s := uint64(1); s <= n+1; s++ {
		tb.Tally(counted(s, 100+s, 0, 200, 1, 7, 7e6, true))
	}
	// The opening exchanges are requests of their own: n+1 sent whole (the
	// last one's series has room), n*7 more counted in the kernel.
	if got := count(gather(t, tb), serverSeries, map[string]string{"route": "/t"}); got != n+1+n*7 {
		t.Errorf("%d requests counted, want %d", got, n+1+n*7)
	}
	wantRecords(t, tb, 0, 0, 1+7)
	if len(tb.tallies) != 0 {
		t.Errorf("%d tallied sockets after their final tallies, want 0", len(tb.tallies))
	}
}

// The N+1th request in flight on one socket is dropped and counted; the
// N answers pair with the first N, the last answer with nothing.
func TestMaxPending(t *testing.T) {
	const n = 4
	opts := DefaultOptions()
	opts.MaxPending = n
	tb := New(names, nil, nil, wall, "", opts)
	for i := range n + 1 {
		tb.Apply(req(1, uint64(i), "GET /p"+strconv.Itoa(i)+" HTTP/1.1\r\n"))
	}
	if q := len(tb.socks[1].queue); q != n {
		t.Fatalf("%d requests in flight, want %d", q, n)
	}
	for i := range n + 1 {
		tb.Apply(resp(1, uint64(10+i), "HTTP/1.1 200 OK\r\n"))
	}
	mfs := gather(t, tb)
	for i := range n + 1 {
		want := uint64(1)
		if i == n {
			want = 0
		}
		if got := count(mfs, serverSeries, map[string]string{"route": "/p" + strconv.Itoa(i)}); got != want {
			t.Errorf("/p%d: %d, want %d", i, got, want)
		}
	}
	wantRecords(t, tb, 1, 0, 1)
}

// The N+1th series is not made: its request is dropped and counted, and
// the N series keep counting.
func TestMaxSeries(t *testing.T) {
	const n = 6
	opts := DefaultOptions()
	opts.MaxSeries = n
	tb := New(names, nil, nil, wall, "", opts)
	for i := range n + 1 {
		tb.Apply(req(1, uint64(10*i), "GET /s"+strconv.Itoa(i)+" HTTP/1.1\r\n"))
		tb.Apply(resp(1, uint64(10*i+1), "HTTP/1.1 200 OK\r\n"))
	}
	tb.Apply(req(1, 100, "GET /s0 HTTP/1.1\r\n"))
	tb.Apply(resp(1, 101, "HTTP/1.1 200 OK\r\n"))
	mfs := gather(t, tb)
	if got := len(mfs[serverSeries].GetMetric()); got != n {
		t.Errorf("%d series, want %d", got, n)
	}
	if got := count(mfs, serverSeries, map[string]string{"route": "/s" + strconv.Itoa(n)}); got != 0 {
		t.Errorf("the N+1th series counted %d", got)
	}
	if got := count(mfs, serverSeries, map[string]string{"route": "/s0"}); got != 2 {
		t.Errorf("/s0: %d, want 2", got)
	}
	wantRecords(t, tb, 0, 0, 1)
}

// The N+1th route folds into ~other; requests are not lost.
func TestMaxRoutes(t *testing.T) {
	const n = 3
	opts := DefaultOptions()
	opts.MaxRoutes = n
	tb := New(names, nil, nil, wall, "", opts)
	for i := range n + 2 {
		tb.Apply(req(1, uint64(10*i), "GET /r"+strconv.Itoa(i)+" HTTP/1.1\r\n"))
		tb.Apply(resp(1, uint64(10*i+1), "HTTP/1.1 200 OK\r\n"))
	}
	mfs := gather(t, tb)
	for i := range n {
		if got := count(mfs, serverSeries, map[string]string{"route": "/r" + strconv.Itoa(i)}); got != 1 {
			t.Errorf("/r%d: %d, want 1", i, got)
		}
	}
	if got := count(mfs, serverSeries, map[string]string{"route": flow.Other}); got != 2 {
		t.Errorf("~other: %d, want the 2 beyond the bound", got)
	}
	if len(tb.routes) != n {
		t.Errorf("%d routes kept, want %d", len(tb.routes), n)
	}
	wantRecords(t, tb, 0, 0, 0)
}
