package harness

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Fault is how a proxy answers.
type Fault int32

const (
	Pass      Fault = iota // forward to the real backend
	Down                   // nothing listens: connection refused
	Status500              // answer 500 Internal Server Error (gRPC: Unavailable)
	Status400              // answer 400, as a backend does for a bad tenant (gRPC: InvalidArgument)
	Silent                 // accept and read the request, never answer
)

// faults is what both proxies share: the current fault, and what arrived
// under each.
type faults struct {
	fault atomic.Int32

	mu      sync.Mutex
	release chan struct{} // closed to let Silent requests go
	counts  map[Fault]int
	seen    map[[32]byte]bool // bodies sent before
	repeats map[Fault]int     // requests whose body had been sent before: retries
	headers map[string][]string
}

func newFaults() faults {
	return faults{release: make(chan struct{}), counts: map[Fault]int{}, seen: map[[32]byte]bool{}, repeats: map[Fault]int{}, headers: map[string][]string{}}
}

// set changes the fault; requests held by Silent go through once it ends.
func (f *faults) set(to Fault) (old Fault) {
	old = Fault(f.fault.Swap(int32(to)))
	f.mu.Lock()
	defer f.mu.Unlock()
	if old == Silent && to != Silent {
		close(f.release)
		f.release = make(chan struct{})
	}
	return old
}

// record counts a request with its body and headers under the current fault.
func (f *faults) record(body []byte, header map[string][]string) (Fault, <-chan struct{}) {
	fault := Fault(f.fault.Load())
	sum := sha256.Sum256(body)
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts[fault]++
	if f.seen[sum] {
		f.repeats[fault]++
	}
	f.seen[sum] = true
	for k, vs := range header {
		k = http.CanonicalHeaderKey(k)
		for _, v := range vs {
			if n := len(f.headers[k]); n == 0 || f.headers[k][n-1] != v {
				f.headers[k] = append(f.headers[k], v)
			}
		}
	}
	return fault, f.release
}

// Repeats is how many requests arrived while f was set whose body had
// arrived before: the same data sent again.
func (f *faults) Repeats(fault Fault) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.repeats[fault]
}

// Requests is how many requests arrived while f was set.
func (f *faults) Requests(fault Fault) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[fault]
}

// Header is the values a request header took, in the order they first
// arrived (a value repeated by consecutive requests is listed once).
func (f *faults) Header(name string) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.headers[http.CanonicalHeaderKey(name)]...)
}

// Proxy sits between the agent and a real HTTP backend and injects faults.
type Proxy struct {
	faults
	t      *testing.T
	Addr   string
	target *httputil.ReverseProxy

	mu  sync.Mutex
	srv *http.Server
}

// StartProxy forwards to the backend at addr until the test ends.
func StartProxy(t *testing.T, addr string) *Proxy {
	u, _ := url.Parse("http://" + addr)
	p := &Proxy{faults: newFaults(), t: t, Addr: FreeAddr(t), target: httputil.NewSingleHostReverseProxy(u)}
	p.listen()
	t.Cleanup(func() { p.Set(Down) })
	return p
}

// Set changes how the proxy answers from now on.
func (p *Proxy) Set(f Fault) {
	p.set(f)
	p.mu.Lock()
	defer p.mu.Unlock()
	switch {
	case f == Down && p.srv != nil:
		p.srv.Close()
		p.srv = nil
	case f != Down && p.srv == nil:
		p.listenLocked()
	}
}

func (p *Proxy) listen() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.listenLocked()
}

func (p *Proxy) listenLocked() {
	var ln net.Listener
	var err error
	for i := 0; i < 50; i++ { // the port may linger a moment after a close
		if ln, err = net.Listen("tcp", p.Addr); err == nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil {
		p.t.Fatalf("proxy listen %s: %v", p.Addr, err)
	}
	p.srv = &http.Server{Handler: http.HandlerFunc(p.serve)}
	go func(s *http.Server) {
		if err := s.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			p.t.Logf("proxy: %v", err)
		}
	}(p.srv)
}

func (p *Proxy) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	f, release := p.record(body, r.Header)
	switch f {
	case Status500:
		http.Error(w, "injected failure", http.StatusInternalServerError)
	case Status400:
		http.Error(w, "injected: no org id", http.StatusBadRequest)
	case Silent:
		select {
		case <-release: // the fault is over: the request goes through late
			p.target.ServeHTTP(w, r)
		case <-r.Context().Done():
		}
	default:
		p.target.ServeHTTP(w, r)
	}
}
