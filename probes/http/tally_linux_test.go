package http

import (
	"context"
	"fmt"
	"io"
	"net"
	nethttp "net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stratanet/strata/probes/event"
	"github.com/stratanet/strata/probes/kind"
	"github.com/stratanet/strata/probes/ring"
)

// tallyProbe is the probe with Tally on, and what it wrote into the ring.
type tallyProbe struct {
	*Probe
	mu        sync.Mutex
	exchanges []event.HTTP
	tallies   []*event.HTTPTally
}

func openTally(t *testing.T, mode Mode, collapse bool) *tallyProbe {
	t.Helper()
	events := openRing(t)
	p, err := Open(events, Options{Mode: mode, Tally: true, CollapseIDs: collapse})
	if err != nil {
		t.Fatal(err)
	}
	tp := &tallyProbe{Probe: p}
	type rec struct {
		e event.HTTP
		c *event.HTTPTally
	}
	decode := func(raw []byte) (rec, error) {
		if len(raw) > 0 && raw[0] == kind.HTTPTally {
			c, err := DecodeTally(raw)
			return rec{c: c}, err
		}
		e, err := Decode(raw)
		return rec{e: e}, err
	}
	r, err := ring.Open(events, 10*time.Millisecond, decode, func() []rec { return make([]rec, 0, 64) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx, func(b []rec) {
			tp.mu.Lock()
			defer tp.mu.Unlock()
			for _, x := range b {
				if x.c != nil {
					tp.tallies = append(tp.tallies, x.c)
				} else if x.e.Ended != 0 {
					tp.exchanges = append(tp.exchanges, x.e)
				}
			}
		}, func(err error) { t.Errorf("undecodable: %v", err) })
	}()
	t.Cleanup(func() { cancel(); <-done; p.Close(); events.Close() })
	return tp
}

// count is what one end saw: exchanges sent whole and those tallied, by
// "METHOD path status" (tallied ones under their slot's first exchange).
type count struct {
	whole, tallied map[string]int
	opened         map[string]int // slots opened, by what they count
	buckets        map[string][len(event.TallySlot{}.Counts)]uint64
	sums           map[string]uint64 // ns
	finals         int
}

func newCount() count {
	return count{whole: map[string]int{}, tallied: map[string]int{}, opened: map[string]int{},
		buckets: map[string][len(event.TallySlot{}.Counts)]uint64{}, sums: map[string]uint64{}}
}

// ends sorts what the probe wrote for the server on port into the client
// end and the server end.
func (tp *tallyProbe) ends(port uint16) (client, server count) {
	time.Sleep(200 * time.Millisecond) // the ring is drained every 10 ms
	tp.mu.Lock()
	defer tp.mu.Unlock()
	client, server = newCount(), newCount()
	end := func(local, remote uint16) *count {
		switch port {
		case local:
			return &server
		case remote:
			return &client
		}
		return nil
	}
	// A tally is known by its socket and cookie, as the agent knows it: a
	// closed socket's ports may read 0 already.
	type sock struct {
		end   *count
		slots [event.TallySlots]string // what each slot counts
	}
	socks := map[[2]uint64]*sock{}
	for _, e := range tp.exchanges {
		c := end(e.Local.Port(), e.Remote.Port())
		if c == nil {
			continue
		}
		what := fmt.Sprintf("%s %s %d", e.Method, e.Path, e.Status)
		c.whole[what]++
		if e.Slot > 0 {
			c.opened[what]++
			id := [2]uint64{e.Sock, e.Cookie}
			if socks[id] == nil {
				socks[id] = &sock{end: c}
			}
			socks[id].slots[e.Slot-1] = what
		}
	}
	for _, k := range tp.tallies {
		s := socks[[2]uint64{k.Sock, k.Cookie}]
		if s == nil {
			if k.Local == port || k.Remote == port {
				server.tallied["unknown slot"]++ // counts of a socket no record opened
			}
			continue
		}
		c := s.end
		if k.Final {
			c.finals++
		}
		for i, sl := range k.Slots {
			if n := sl.Total(); n > 0 {
				what := s.slots[i]
				if what == "" {
					what = "unknown slot"
				}
				c.tallied[what] += int(n)
				b := c.buckets[what]
				for j, n := range sl.Counts {
					b[j] += uint64(n)
				}
				c.buckets[what] = b
				c.sums[what] += sl.Sum
			}
		}
	}
	return client, server
}

// Keep-alive requests on one connection: every exchange is counted once on
// each end, whole or tallied; the socket's first exchange and each slot's
// first come whole, as do 5xx and whatever finds no free slot; identifier segments share a slot
// when collapsed, and the close sends each socket's final tally.
func TestTally(t *testing.T) {
	for _, tc := range []struct {
		mode     Mode
		collapse bool
	}{{Packet, true}, {Tracepoint, true}, {Tracepoint, false}} {
		mode, collapse := tc.mode, tc.collapse
		t.Run(fmt.Sprintf("%s/collapse=%v", mode, collapse), func(t *testing.T) {
			if refused(t, mode) { // tallies are counted in the pairing modes only
				return
			}
			tp := openTally(t, mode, collapse)
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			port := uint16(ln.Addr().(*net.TCPAddr).Port)
			srv := &nethttp.Server{Handler: nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
				io.Copy(io.Discard, r.Body)
				switch {
				case r.URL.Path == "/fail":
					w.WriteHeader(500)
				case r.URL.Path == "/missing":
					w.WriteHeader(404)
				case r.Method == "POST":
					w.WriteHeader(201)
				case r.URL.Path == "/v1/x":
					time.Sleep(30 * time.Millisecond) // bucket (0.025, 0.05]
				}
			})}
			go srv.Serve(ln)
			defer srv.Close()
			tr := &nethttp.Transport{MaxConnsPerHost: 1}
			client := &nethttp.Client{Transport: tr}
			do := func(method, path string) {
				t.Helper()
				req, _ := nethttp.NewRequest(method, fmt.Sprintf("http://%s%s", ln.Addr(), path), nil)
				resp, err := client.Do(req)
				if err != nil {
					t.Fatal(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			for i := 1; i <= 30; i++ {
				do("GET", fmt.Sprintf("/users/%d?token=%d", i, i))
				if i == 15 {
					// Counts so far move into the ring; later ones wait for the close.
					if err := tp.Tally(); err != nil {
						t.Fatal(err)
					}
				}
			}
			for i := 0; i < 10; i++ {
				do("GET", "/missing")
			}
			for i := 0; i < 3; i++ {
				do("GET", "/fail")
			}
			for i := 0; i < 5; i++ {
				do("GET", "/v1/x")
				do("GET", "/v2/x")
			}
			for i := 0; i < 4; i++ {
				do("POST", "/items")
			}
			tr.CloseIdleConnections()
			srv.Close()
			cl, sv := tp.ends(port)
			for _, c := range []struct {
				end string
				got count
			}{{"client", cl}, {"server", sv}} {
				got := c.got
				sum := func(prefix string) int {
					n := 0
					for k, v := range got.whole {
						if strings.HasPrefix(k, prefix) {
							n += v
						}
					}
					for k, v := range got.tallied {
						if strings.HasPrefix(k, prefix) {
							n += v
						}
					}
					return n
				}
				want := map[string]int{"GET /users/": 30, "GET /missing 404": 10, "GET /fail 500": 3,
					"GET /v1/x 200": 5, "GET /v2/x 200": 5, "POST /items 201": 4}
				for what, n := range want {
					if got := sum(what); got != n {
						t.Errorf("%s: %s counted %d times, want %d (whole %v, tallied %v)", c.end, what, got, n, c.got.whole, c.got.tallied)
					}
				}
				if got.tallied["unknown slot"] != 0 {
					t.Errorf("%s: %d exchanges tallied in a slot no record opened", c.end, got.tallied["unknown slot"])
				}
				// 5xx never tallied; nor what found every slot taken.
				for _, what := range []string{"GET /fail 500", "POST /items 201"} {
					if got.tallied[what] != 0 || got.opened[what] != 0 {
						t.Errorf("%s: %s tallied %d, opened %d slots; want all whole", c.end, what, got.tallied[what], got.opened[what])
					}
				}
				opened := 0
				for _, n := range got.opened {
					opened += n
				}
				if opened != event.TallySlots {
					t.Errorf("%s: %d slots opened (%v), want all %d", c.end, opened, got.opened, event.TallySlots)
				}
				if collapse {
					// /users/{id} is one slot (opened by the socket's second
					// exchange: the first never is); /v1 and /v2 are not identifiers.
					for _, what := range []string{"GET /users/2 200", "GET /missing 404", "GET /v1/x 200", "GET /v2/x 200"} {
						if got.opened[what] != 1 {
							t.Errorf("%s: slots opened %v, want one for %s", c.end, got.opened, what)
						}
					}
					// Most exchanges are tallied, not sent: at most one
					// whole per slot, bucket and tally past the first.
					if n := got.tallied["GET /users/2 200"]; n < 30-2-2*len(event.HTTPBuckets) {
						t.Errorf("%s: only %d of 30 /users exchanges tallied", c.end, n)
					}
				} else {
					for i := 2; i <= 5; i++ {
						if what := fmt.Sprintf("GET /users/%d 200", i); got.opened[what] != 1 {
							t.Errorf("%s: slots opened %v, want one for %s", c.end, got.opened, what)
						}
					}
					if got.whole["GET /users/30 200"] != 1 {
						t.Errorf("%s: /users/30 not sent whole: %v", c.end, got.whole)
					}
				}
				// Slow exchanges land in the bucket of their latency.
				slow := got.buckets["GET /v1/x 200"]
				if n := got.tallied["GET /v1/x 200"]; collapse && (n == 0 || slow[6] != uint64(n) || got.sums["GET /v1/x 200"] < uint64(n)*30e6) {
					t.Errorf("%s: /v1/x (30 ms) tallied %d in buckets %v (bucket 6 is le=%v), %d ns in all",
						c.end, n, slow, event.HTTPBuckets[6], got.sums["GET /v1/x 200"])
				}
				if got.finals != 1 {
					t.Errorf("%s: %d final tallies, want 1", c.end, got.finals)
				}
			}
		})
	}
}
