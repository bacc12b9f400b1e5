package http

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	nethttp "net/http"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/stratanet/strata/probes/dns"
	"github.com/stratanet/strata/probes/event"
	"github.com/stratanet/strata/probes/ring"
	"github.com/stratanet/strata/probes/tracepoint"
)

var modes = []Mode{Packet, Tracepoint, Syscall}

// eachMode runs a test with the probe in each mode the kernel offers.
func eachMode(t *testing.T, test func(t *testing.T, records func(port uint16) []event.HTTP)) {
	for _, m := range modes {
		t.Run(string(m), func(t *testing.T) {
			if refused(t, m) {
				return
			}
			test(t, open(t, m))
		})
	}
}

// refused says whether this kernel lacks the hooks of mode, after checking
// that Open then refuses it with the one-line reason the agent logs
// (kernels before 6.3 have no sock_*_length tracepoints; 6.12 does not let
// cgroup_skb programs call bpf_get_current_comm).
func refused(t *testing.T, m Mode) bool {
	t.Helper()
	var why string
	switch {
	case m == Tracepoint && tracepoint.MissingBTF(tracepoint.SocketHooks...) != "":
		why = "_length tracepoint (Linux 6.3+)"
	case m == Packet && PacketsSupported() != nil:
		why = "cgroup_skb programs call"
	default:
		return false
	}
	_, err := Open(openRing(t), Options{Mode: m})
	if !errors.Is(err, ebpf.ErrNotSupported) || !strings.Contains(err.Error(), why) {
		t.Fatalf("Open(%s) on a kernel without its hooks: %v, want the reason named", m, err)
	}
	t.Logf("refused here, as it should be: %v", err)
	return true
}

// Auto takes the packet programs or the tracepoints where the kernel has
// them, else the syscall fallback, and then says in one line which hook was
// missing (the agent logs it).
func TestAutoSaysWhyItFellBack(t *testing.T) {
	p, err := Open(openRing(t), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	missing := tracepoint.MissingBTF(tracepoint.SocketHooks...)
	switch why := p.FellBack(); {
	case PacketsSupported() == nil && (p.Mode() != Packet || why != nil):
		t.Errorf("mode %s (fell back: %v), want cgroup_skb", p.Mode(), why)
	case missing == "" && (p.Mode() == Syscall || why != nil):
		t.Errorf("mode %s (fell back: %v), want cgroup_skb or tracepoint", p.Mode(), why)
	case missing != "" && (p.Mode() != Syscall || why == nil ||
		!strings.Contains(why.Error(), "no "+missing+" tracepoint (Linux 6.3+)") || strings.Contains(why.Error(), "\n")):
		t.Errorf("mode %s, fell back: %v; want syscall, and %s named in one line", p.Mode(), why, missing)
	default:
		t.Logf("mode %s (fell back: %v)", p.Mode(), why)
	}
}

// pairing says whether the test runs a mode that pairs in the kernel.
func pairing(t *testing.T) bool {
	mode := Mode(strings.Split(t.Name(), "/")[1])
	return mode == Tracepoint || mode == Packet
}

// openRing makes a ring of the test's own (in the agent it is the one the
// TCP probes write), as root: in CI a test without root fails.
func openRing(t *testing.T) *ebpf.Map {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("BPF tests must run as root in CI")
		}
		t.Skip("needs root")
	}
	events, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 1 << 22})
	if err != nil {
		t.Fatal(err)
	}
	return events
}

func open(t *testing.T, mode Mode) func(port uint16) []event.HTTP {
	t.Helper()
	events := openRing(t)
	p, err := Open(events, Options{Mode: mode})
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode() != mode {
		t.Fatalf("mode %s, want %s", p.Mode(), mode)
	}
	r, err := ring.Open(events, 10*time.Millisecond, Decode, func() []event.HTTP { return make([]event.HTTP, 0, 64) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var evs []event.HTTP
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx, func(b []event.HTTP) { mu.Lock(); evs = append(evs, b...); mu.Unlock() },
			func(err error) { t.Errorf("undecodable: %v", err) })
	}()
	t.Cleanup(func() { cancel(); <-done; p.Close(); events.Close() })
	return func(port uint16) []event.HTTP {
		// Only what happened before the call: a socket's kernel address is
		// reused once it is freed, and other tests' HTTP may land on it.
		var ts unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		until := uint64(ts.Nano())
		time.Sleep(200 * time.Millisecond)
		mu.Lock()
		defer mu.Unlock()
		// Requests carry the socket's ends; responses only the socket,
		// and a response may come before any request of its socket.
		socks := map[uint64]bool{}
		for _, e := range evs {
			if e.Mono <= until && !e.Response && (e.Local.Port() == port || e.Remote.Port() == port) {
				socks[e.Sock] = true
			}
		}
		var out []event.HTTP
		for _, e := range evs {
			if e.Mono <= until && socks[e.Sock] {
				out = append(out, e)
			}
		}
		return out
	}
}

// tally counts requests and responses by end and direction ("server
// received request" etc.), whether they came alone or paired. A request
// says its end by its ports. A lone response carries only its socket's
// kernel address, and takes the end of the request before it there (its
// own), or of the one after when it came first (an answer to nothing, the
// first thing on its socket). The address alone cannot say the end: the
// kernel reuses a freed socket's memory at once, and a test's second
// connection may take its first one's addresses crosswise, its client the
// server's and its server the client's (seen on 6.12, once in five runs of
// TestResponseBeforeSendReturns: every record then counted as the server's).
func tally(evs []event.HTTP, port uint16) map[string]int {
	evs = slices.Clone(evs)
	sort.SliceStable(evs, func(i, j int) bool { return evs[i].Mono < evs[j].Mono })
	ends := make([]string, len(evs))
	last := map[uint64]string{} // the end of each address's latest request
	early := map[uint64][]int{} // lone responses before any request at their address
	for i, e := range evs {
		end := last[e.Sock]
		switch {
		case e.Response:
		case e.Local.Port() == port:
			end = "server"
		case e.Remote.Port() == port:
			end = "client"
		}
		if end == "" {
			early[e.Sock] = append(early[e.Sock], i)
			continue
		}
		ends[i] = end
		if !e.Response {
			last[e.Sock] = end
			for _, j := range early[e.Sock] {
				ends[j] = end
			}
			delete(early, e.Sock)
		}
	}
	n := map[string]int{}
	for i, e := range evs {
		end := ends[i]
		if end == "" {
			end = "unknown end:"
		}
		what := "request"
		if e.Response {
			what = "response"
		}
		dir, other := "sent", "received"
		if e.Received {
			dir, other = other, dir
		}
		n[end+" "+dir+" "+what]++
		if e.Ended != 0 && e.Status != 0 {
			n[end+" "+other+" response"]++
		}
	}
	return n
}

// logRecords shows what a failing test was given, in the kernel's order.
func logRecords(t *testing.T, evs []event.HTTP) {
	t.Helper()
	for _, e := range evs {
		what := "request " + e.Method + " " + e.Path
		if e.Response {
			what = fmt.Sprint("response ", e.Status)
		} else if e.Ended != 0 {
			what += fmt.Sprint(" = ", e.Status)
		}
		dir := "sent"
		if e.Received {
			dir = "received"
		}
		t.Logf("  %d sock %#x %s -> %s %s %s", e.Mono, e.Sock, e.Local, e.Remote, dir, what)
	}
}

// Keep-alive requests from Go's client to Go's server: one record per
// request and per response on each end, none for the bodies.
func TestOneRecordPerRequestAndResponse(t *testing.T) {
	eachMode(t, oneRecordPerRequestAndResponse)
}

// Packet mode shares the cgroup root's programs with DNS capture (DNS's
// packets go to it, everything else to HTTP): exact beside it, and still
// exact once DNS capture has gone.
func TestPacketBesideDNS(t *testing.T) {
	if refused(t, Packet) {
		return
	}
	events := openRing(t)
	defer events.Close()
	d, _, err := dns.Open(events, dns.ModeCgroupSKB)
	if err != nil {
		t.Fatal(err)
	}
	leave := sync.OnceValue(d.Close)
	defer leave()
	t.Run(string(Packet), func(t *testing.T) {
		records := open(t, Packet)
		t.Run("beside DNS", func(t *testing.T) { oneRecordPerRequestAndResponse(t, records) })
		leave()
		// The same probe, its records from here on (a socket's kernel
		// address, which the records go by, is reused).
		var ts unix.Timespec
		unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
		since := uint64(ts.Nano())
		later := func(port uint16) []event.HTTP {
			return slices.DeleteFunc(records(port), func(e event.HTTP) bool { return e.Mono < since })
		}
		t.Run("after DNS left", func(t *testing.T) { oneRecordPerRequestAndResponse(t, later) })
	})
}

func oneRecordPerRequestAndResponse(t *testing.T, records func(port uint16) []event.HTTP) {
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	srv := &nethttp.Server{Handler: nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		io.Copy(io.Discard, r.Body)
		w.WriteHeader(201)
		w.Write([]byte(strings.Repeat("b", 100000))) // a body over many calls
	})}
	go srv.Serve(ln)
	defer srv.Close()
	for i := 0; i < 5; i++ {
		resp, err := nethttp.Post(fmt.Sprintf("http://%s/users/%d?secret=x", ln.Addr(), i), "text/plain",
			strings.NewReader(strings.Repeat("GET / HTTP/1.1\r\n", 1000))) // a body that looks like requests
		if err != nil {
			t.Fatal(err)
		}
		io.ReadAll(resp.Body)
		resp.Body.Close()
	}
	evs := records(port)
	want := map[string]int{"client sent request": 5, "server received request": 5,
		"server sent response": 5, "client received response": 5}
	got := tally(evs, port)
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s: %d, want %d (all: %v)", k, got[k], v, got)
		}
	}
	for _, e := range evs {
		if !e.Response {
			if !e.Valid || e.Method != "POST" || !strings.HasPrefix(e.Path, "/users/") || (e.Ended != 0 && e.Status != 201) {
				t.Errorf("request %+v", e)
			}
		} else if !e.Valid || e.Status != 201 {
			t.Errorf("response %+v", e)
		}
		owner := fmt.Sprintf("http.test/%d", os.Getpid())
		if e.Received && strings.Contains(t.Name(), "/"+string(Packet)) {
			owner = "/0" // received in softirq: no process; the listener names the server
		}
		if got := fmt.Sprintf("%s/%d", e.Comm, e.PID); !e.Response && got != owner {
			t.Errorf("request owned by %s, want %s", got, owner)
		}
	}
}

// writev on one end, recvmsg-family reads on the other: vectored calls
// are seen too.
func TestVectoredCalls(t *testing.T) {
	eachMode(t, func(t *testing.T, records func(port uint16) []event.HTTP) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			buf := make([]byte, 4096)
			raw, _ := c.(*net.TCPConn).SyscallConn()
			raw.Read(func(fd uintptr) bool { // recvmsg, not read
				_, _, _, _, err := recvmsg(int(fd), buf)
				return err == nil
			})
			bufs := net.Buffers{[]byte("HTTP/1.1 204 No Content\r\n"), []byte("Content-Length: 0\r\n\r\n")}
			bufs.WriteTo(c) // writev
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		bufs := net.Buffers{[]byte("DELETE /items/7 HTTP/1.1\r\n"), []byte("Host: x\r\n\r\n")}
		bufs.WriteTo(c)
		bufio.NewReader(c).ReadString('\n')
		c.Close()
		got := tally(records(port), port)
		for _, k := range []string{"client sent request", "server received request", "server sent response", "client received response"} {
			if got[k] != 1 {
				t.Errorf("%s: %d, want 1 (all: %v)", k, got[k], got)
			}
		}
	})
}

// A server that reads the first byte alone (as Go's HTTP server does while
// it watches for the client to go away) still shows whole requests.
func TestRequestSplitAfterFirstByte(t *testing.T) {
	eachMode(t, func(t *testing.T, records func(port uint16) []event.HTTP) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			for i := 0; i < 3; i++ {
				one := make([]byte, 1)
				if _, err := io.ReadFull(c, one); err != nil {
					return
				}
				rest := make([]byte, 4096)
				c.Read(rest)
				c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
			}
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		for i := 0; i < 3; i++ {
			fmt.Fprintf(c, "PUT /things/%d HTTP/1.1\r\nHost: x\r\n\r\n", i)
			time.Sleep(20 * time.Millisecond) // let the one-byte read happen alone
			r.ReadString('\n')
			r.ReadString('\n')
			r.ReadString('\n')
		}
		c.Close()
		evs := records(port)
		var paths []string
		for _, e := range evs {
			if !e.Response && e.Received {
				if !e.Valid {
					t.Errorf("request %+v does not parse", e)
				}
				paths = append(paths, e.Method+" "+e.Path)
			}
		}
		if strings.Join(paths, ",") != "PUT /things/0,PUT /things/1,PUT /things/2" {
			t.Fatalf("server saw %v", paths)
		}
	})
}

// Two requests before the first response (pipelining), then a request the
// server never answers, then a connection whose one request goes
// unanswered: every request and response is seen once, whether the kernel
// pairs them or the agent must.
func TestPipelinedAndUnanswered(t *testing.T) {
	eachMode(t, func(t *testing.T, records func(port uint16) []event.HTTP) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 4096)
			for i := 0; i < 2; i++ { // each request in its own read
				if _, err := c.Read(buf); err != nil {
					return
				}
			}
			c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
			time.Sleep(20 * time.Millisecond)
			c.Write([]byte("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"))
			c.Read(buf) // the third request, never answered
			c.Close()
			if c, err = ln.Accept(); err != nil {
				return
			}
			c.Read(buf)
			c.Close()
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /a HTTP/1.1\r\nHost: x\r\n\r\n")
		time.Sleep(20 * time.Millisecond)
		fmt.Fprintf(c, "GET /b HTTP/1.1\r\nHost: x\r\n\r\n")
		r := bufio.NewReader(c)
		for i := 0; i < 6; i++ {
			r.ReadString('\n')
		}
		time.Sleep(20 * time.Millisecond)
		fmt.Fprintf(c, "GET /c HTTP/1.1\r\nHost: x\r\n\r\n")
		r.ReadString('\n') // EOF: the server closed
		c.Close()
		if c, err = net.Dial("tcp", ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "GET /d HTTP/1.1\r\nHost: x\r\n\r\n")
		bufio.NewReader(c).ReadString('\n') // EOF
		c.Close()
		evs := records(port)
		got := tally(evs, port)
		want := map[string]int{"client sent request": 4, "server received request": 4,
			"server sent response": 2, "client received response": 2}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %d, want %d (all: %v)", k, got[k], v, got)
			}
		}
		// The pipelining socket is paired by the agent in both modes; the
		// last connection's request ends unanswered in the kernel.
		wantSeen := "/a /a /b /b /c /c /d /d 200 200 404 404"
		if pairing(t) {
			wantSeen = "/a /a /b /b /c /c /d=0 /d=0 200 200 404 404"
		}
		if seen := outcomes(evs); seen != wantSeen {
			t.Errorf("records %q, want %q", seen, wantSeen)
		}
	})
}

// outcomes says what each request became, sorted: its path and, where the
// kernel paired it, its status (0: unanswered); lone responses by status.
func outcomes(evs []event.HTTP) string {
	var seen []string
	for _, e := range evs {
		switch {
		case e.Response:
			seen = append(seen, fmt.Sprint(e.Status))
		case e.Ended != 0:
			seen = append(seen, fmt.Sprintf("%s=%d", e.Path, e.Status))
		default:
			seen = append(seen, e.Path)
		}
	}
	sort.Strings(seen)
	return strings.Join(seen, " ")
}

// A request answered "100 Continue" first, then its body, then the final
// response: the request pairs with the final response, not the interim one.
func TestContinueThenFinalResponse(t *testing.T) {
	eachMode(t, func(t *testing.T, records func(port uint16) []event.HTTP) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			defer c.Close()
			buf := make([]byte, 4096)
			c.Read(buf)
			c.Write([]byte("HTTP/1.1 100 Continue\r\n\r\n"))
			c.Read(buf) // the body
			c.Write([]byte("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"))
			c.Read(buf) // EOF
		}()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		fmt.Fprintf(c, "POST /upload HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 12\r\n\r\n")
		r.ReadString('\n')
		r.ReadString('\n')
		fmt.Fprintf(c, "hello, world")
		for i := 0; i < 3; i++ {
			r.ReadString('\n')
		}
		c.Close()
		var seen []string
		for _, e := range records(port) {
			switch {
			case e.Response:
				seen = append(seen, fmt.Sprint(e.Status))
			case e.Ended != 0:
				seen = append(seen, fmt.Sprintf("%s %s=%d", e.Method, e.Path, e.Status))
			default:
				seen = append(seen, e.Method+" "+e.Path)
			}
		}
		sort.Strings(seen)
		want := "100 100 201 201 POST /upload POST /upload"
		if pairing(t) {
			want = "POST /upload=201 POST /upload=201"
		}
		if strings.Join(seen, " ") != want {
			t.Errorf("records %q, want %q", strings.Join(seen, " "), want)
		}
	})
}

// The records of TestResponseBeforeSendReturns's two connections as the
// kernel can give them: the second connection's sockets at the first's
// addresses, crosswise. Each record still counts at its own end.
func TestTallyAcrossReusedAddresses(t *testing.T) {
	const port = 42001
	server := netip.MustParseAddrPort("127.0.0.1:42001")
	c1, c2 := netip.MustParseAddrPort("127.0.0.1:50001"), netip.MustParseAddrPort("127.0.0.1:50002")
	const a, b = 0xa0, 0xb0 // the only two addresses: S1 then C2 at a, C1 then S2 at b
	req := func(at uint64, sk uint64, local, remote netip.AddrPort, received bool) event.HTTP {
		return event.HTTP{Mono: at, Sock: sk, Local: local, Remote: remote, Received: received, Valid: true, Method: "GET", Path: "/"}
	}
	resp := func(at uint64, sk uint64, received bool) event.HTTP {
		return event.HTTP{Mono: at, Sock: sk, Response: true, Received: received, Valid: true, Status: 200}
	}
	evs := []event.HTTP{
		resp(1, a, false), resp(2, b, true), // the answer to nothing: S1 sends, C1 reads
		req(3, b, c1, server, false), req(4, a, server, c1, true), resp(5, a, false), resp(6, b, true),
		// The ring's order is not quite the kernel's (one buffer per CPU's
		// writes, merged as they come): time decides.
		req(8, b, server, c2, true), req(7, a, c2, server, false), resp(9, b, false), resp(10, a, true),
	}
	got := tally(evs, port)
	want := map[string]int{"client sent request": 2, "server received request": 2,
		"server sent response": 3, "client received response": 3}
	if !maps.Equal(got, want) {
		t.Errorf("tally %v, want %v", got, want)
	}
}
