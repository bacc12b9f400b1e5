package agent

import (
	"errors"
	"testing"
	"time"
)

// TestLiveAndReady walks /healthz and /readyz through an agent's life:
// loading, listing, running, a stuck loop, a stopped reader.
func TestLiveAndReady(t *testing.T) {
	now := time.Unix(1000, 0)
	h := newHealth(true)
	h.now = func() time.Time { return now }
	state := func() (string, string) {
		s := func(err error) string {
			if err == nil {
				return "ok"
			}
			return err.Error()
		}
		return s(h.Live()), s(h.Ready())
	}
	want := func(step, live, ready string) {
		t.Helper()
		if l, r := state(); l != live || r != ready {
			t.Errorf("%s: live %q ready %q, want %q %q", step, l, r, live, ready)
		}
	}
	want("starting", "ok", "probes not loaded yet")
	h.loaded(map[string]string{"tcp_state": "tracepoint"}, func() map[string]uint64 { return nil })
	want("probes loaded", "ok", "event loop not started yet")
	h.turn()
	want("no informers", "ok", "Kubernetes informers have not listed everything yet")
	synced := false
	h.watchSync(func() bool { return synced })
	want("listing", "ok", "Kubernetes informers have not listed everything yet")
	synced = true
	want("synced", "ok", "ok")

	now = now.Add(stallAfter) // exactly the limit: still alive
	want("at the limit", "ok", "ok")
	now = now.Add(2 * time.Second)
	stuck := "event loop has not turned for 12s (limit 10s)"
	want("stuck", stuck, stuck)
	h.turn()
	want("turned again", "ok", "ok")

	h.readerStopped(errors.New("epoll: bad file descriptor"))
	gone := "ring-buffer reader stopped: epoll: bad file descriptor"
	want("reader gone", gone, gone)
}

// Outside Kubernetes, readiness needs only the probes and the loop.
func TestReadyStandalone(t *testing.T) {
	h := newHealth(false)
	h.loaded(map[string]string{}, func() map[string]uint64 { return nil })
	h.turn()
	if err := h.Ready(); err != nil {
		t.Fatalf("standalone, loaded and turning: %v", err)
	}
	h2 := newHealth(false)
	h2.turn()
	h2.readerStopped(nil)
	if err := h2.Live(); err == nil || err.Error() != "ring-buffer reader stopped: returned without an error" {
		t.Fatalf("reader returned nil: Live = %v", err)
	}
}
