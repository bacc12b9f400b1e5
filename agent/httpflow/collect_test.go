package httpflow

import (
	"strconv"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// A scrape copies the series under the lock and builds and sends them
// outside it: records apply while a slow scraper reads, and what it reads
// is the table as it was when the scrape began.
func TestCollectSendsOutsideTheLock(t *testing.T) {
	tb := New(names, nil, nil, wall, "", DefaultOptions())
	for i := range 10 {
		tb.Apply(req(1, uint64(100*i), "GET /r"+strconv.Itoa(i)+" HTTP/1.1\r\n"))
		tb.Apply(resp(1, uint64(100*i+50), "HTTP/1.1 200 OK\r\n"))
	}
	ch := make(chan prometheus.Metric) // unbuffered: Collect waits on each send
	go func() { tb.Collect(ch); close(ch) }()
	var got uint64
	n := 0
	for m := range ch {
		if n == 0 {
			// Collect is blocked sending its first metric.
			if !tb.mu.TryLock() {
				t.Fatal("Collect holds the table's lock while it sends")
			}
			tb.mu.Unlock()
			// The loop goes on meanwhile; the scrape does not see it.
			tb.Apply(req(2, 2000, "GET /r0 HTTP/1.1\r\n"))
			tb.Apply(resp(2, 2050, "HTTP/1.1 200 OK\r\n"))
		}
		n++
		var d dto.Metric
		if err := m.Write(&d); err != nil {
			t.Fatal(err)
		}
		if m.Desc() == serverDesc {
			got += d.GetHistogram().GetSampleCount()
		}
	}
	if got != 10 {
		t.Errorf("scrape counted %d server requests, want the 10 before it began", got)
	}
	// 10 series, the service graph's edge (requests, failed, server
	// times), 3 health counters.
	if n != 10+3+3 {
		t.Errorf("%d metrics, want 16", n)
	}
	if c := count(gather(t, tb), "strata_http_server_request_duration_seconds", map[string]string{"route": "/r0"}); c != 2 {
		t.Errorf("the next scrape: /r0 %d, want 2", c)
	}
}
