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

// Fault is how the Proxy answers.
type Fault int32

const (
	Pass      Fault = iota // forward to the real backend
	Down                   // nothing listens: connection refused
	Status500              // answer 500 Internal Server Error
	Status400              // answer 400, as a backend does for a bad tenant
	Silent                 // accept and read the request, never answer
)

// Proxy sits between the agent and a real backend and injects faults.
type Proxy struct {
	t      *testing.T
	Addr   string
	fault  atomic.Int32
	target *httputil.ReverseProxy

	mu      sync.Mutex
	srv     *http.Server
	release chan struct{} // closed to let Silent requests go
	counts  map[Fault]int
	seen    map[[32]byte]bool // bodies sent before
	repeats map[Fault]int     // requests whose body had been sent before: retries
}

// StartProxy forwards to the backend at addr until the test ends.
func StartProxy(t *testing.T, addr string) *Proxy {
	u, _ := url.Parse("http://" + addr)
	p := &Proxy{t: t, Addr: FreeAddr(t), target: httputil.NewSingleHostReverseProxy(u), counts: map[Fault]int{}, seen: map[[32]byte]bool{}, repeats: map[Fault]int{}, release: make(chan struct{})}
	p.listen()
	t.Cleanup(func() { p.Set(Down) })
	return p
}

// Set changes how the proxy answers from now on.
func (p *Proxy) Set(f Fault) {
	old := Fault(p.fault.Swap(int32(f)))
	p.mu.Lock()
	defer p.mu.Unlock()
	if old == Silent && f != Silent {
		close(p.release)
		p.release = make(chan struct{})
	}
	switch {
	case f == Down && p.srv != nil:
		p.srv.Close()
		p.srv = nil
	case f != Down && p.srv == nil:
		p.listenLocked()
	}
}

// Repeats is how many requests arrived while f was set whose body had
// arrived before: the same data sent again.
func (p *Proxy) Repeats(f Fault) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.repeats[f]
}

// Requests is how many requests arrived while f was set.
func (p *Proxy) Requests(f Fault) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.counts[f]
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
	f := Fault(p.fault.Load())
	body, _ := io.ReadAll(r.Body)
	r.Body = io.NopCloser(bytes.NewReader(body))
	sum := sha256.Sum256(body)
	p.mu.Lock()
	p.counts[f]++
	if p.seen[sum] {
		p.repeats[f]++
	}
	p.seen[sum] = true
	release := p.release
	p.mu.Unlock()
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
