package tcp

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stratanet/strata/probes/event"
	"github.com/stratanet/strata/probes/ring"
)

// requireRoot skips locally but fails in CI, where a skipped BPF test would
// hide a regression.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatal("BPF tests must run as root in CI")
	}
	t.Skip("needs root to load BPF programs")
}

type collector struct {
	mu  sync.Mutex
	evs []event.TCP
}

func (c *collector) add(es []event.TCP) { c.mu.Lock(); c.evs = append(c.evs, es...); c.mu.Unlock() }

// of returns the events touching port, in order.
func (c *collector) of(port uint16) []event.TCP {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []event.TCP
	for _, e := range c.evs {
		if e.Local.Port() == port || e.Remote.Port() == port {
			out = append(out, e)
		}
	}
	return out
}

func open(t *testing.T) (*Probes, *collector) {
	requireRoot(t)
	p, err := Open(zap.NewNop(), Options{RingBytes: 1 << 22})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &collector{}
	done := make(chan struct{})
	r, err := ring.Open(p.Events(), 10*time.Millisecond, Decode, func() []event.TCP { return make([]event.TCP, 0, 64) })
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(done)
		r.Run(ctx, c.add, func(err error) { t.Errorf("undecodable record: %v", err) })
	}()
	t.Cleanup(func() { cancel(); <-done; p.Close() })
	return p, c
}

func TestAllProbesAttachHere(t *testing.T) {
	p, _ := open(t)
	want := map[string]string{"tcp_state": "tracepoint", "tcp_retransmit": "tracepoint", "tcp_reset": "tracepoint", "tcp_sweep": "iterator"}
	got := map[string]string{}
	for _, s := range p.Status() {
		got[s.Probe] = s.Mode
	}
	for probe, mode := range want {
		if got[probe] != mode {
			t.Errorf("%s: mode %q, want %q (%v)", probe, got[probe], mode, p.Status())
		}
	}
}

// One loopback connection with known payloads: each end's records, in
// order, with exact payload counters after the FINs are taken out.
func TestLifecycleAndCounters(t *testing.T) {
	p, c := open(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	served := make(chan struct{})
	go func() {
		defer close(served)
		s, err := ln.Accept()
		if err != nil {
			return
		}
		io.ReadFull(s, make([]byte, 1000))
		s.Write(make([]byte, 3000))
		io.ReadAll(s) // until the client's FIN
		s.Close()
	}()
	cl, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cl.Write(make([]byte, 1000))
	io.ReadFull(cl, make([]byte, 3000))
	time.Sleep(50 * time.Millisecond)
	if err := p.Sweep(42); err != nil { // this test runs in the root namespace
		t.Fatal(err)
	}
	cl.Close()
	<-served
	ln.Close()

	deadline := time.Now().Add(5 * time.Second)
	var evs []event.TCP
	for time.Now().Before(deadline) {
		if evs = c.of(port); len(evs) >= 9 {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	kinds := map[event.Kind][]event.TCP{}
	for _, e := range evs {
		kinds[e.Kind] = append(kinds[e.Kind], e)
	}
	self := "tcp.test"
	if l := kinds[event.Listen]; len(l) != 1 || l[0].Comm != self || l[0].PID != uint32(os.Getpid()) {
		t.Fatalf("listen records %+v, want one owned by %s/%d", l, self, os.Getpid())
	}
	if k := kinds[event.Connect]; len(k) != 1 || k[0].Comm != self || k[0].Remote.Port() != port {
		t.Fatalf("connect records %+v", k)
	}
	if k := kinds[event.Accept]; len(k) != 1 || k[0].Local.Port() != port {
		t.Fatalf("accept records %+v", k)
	}
	snaps := map[uint16]event.TCP{}
	for _, s := range kinds[event.Snapshot] {
		if s.Sweep == 42 {
			snaps[s.Local.Port()] = s
		}
	}
	if s := snaps[port]; s.State != event.StateEstablished || s.SentBytes != 3000 || s.ReceivedBytes != 1000 || s.SRTT <= 0 {
		t.Errorf("server snapshot %+v: want ESTABLISHED, sent 3000, received 1000, an RTT", s)
	}
	if len(kinds[event.Close]) != 2 {
		t.Fatalf("close records %+v, want 2", kinds[event.Close])
	}
	connect := kinds[event.Connect][0]
	for _, e := range kinds[event.Close] {
		sent, recv := uint64(3000), uint64(1000) // server
		if e.Sock == connect.Sock {
			// The client's bytes_acked still holds its SYN, as at connect.
			sent, recv = 1000+connect.SentBytes, 3000
		}
		if e.SentBytes != sent || e.ReceivedBytes != recv {
			t.Errorf("close of %v: sent %d received %d, want %d/%d", e.Local, e.SentBytes, e.ReceivedBytes, sent, recv)
		}
	}
	if connect.SentBytes != 1 {
		t.Errorf("connect baseline %d, want 1 (the SYN)", connect.SentBytes)
	}
	if l := kinds[event.ListenClose]; len(l) != 1 {
		t.Errorf("listen_close records %+v", l)
	}
}

func TestRefusedConnectAndResets(t *testing.T) {
	_, c := open(t)
	// A port nobody listens on: grab one, then free it.
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	port := uint16(ln.Addr().(*net.TCPAddr).Port)
	ln.Close()
	if _, err := net.Dial("tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), port).String()); err == nil {
		t.Fatal("connect to a closed port succeeded")
	}
	// A server that aborts: SO_LINGER 0 turns close into a RST.
	ln2, _ := net.Listen("tcp", "127.0.0.1:0")
	port2 := uint16(ln2.Addr().(*net.TCPAddr).Port)
	go func() {
		s, err := ln2.Accept()
		if err == nil {
			s.Read(make([]byte, 1)) // let the client's connect finish first
			s.(*net.TCPConn).SetLinger(0)
			s.Close()
		}
	}()
	cl, err := net.Dial("tcp", ln2.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cl.Write([]byte{1})
	io.ReadAll(cl)
	cl.Close()
	ln2.Close()

	time.Sleep(300 * time.Millisecond)
	var failed []event.TCP
	for _, e := range c.of(port) {
		if e.Kind == event.ConnectFailed {
			failed = append(failed, e)
		}
	}
	if len(failed) != 1 || failed[0].Err.Error() != "connection refused" || failed[0].Comm != "tcp.test" {
		t.Fatalf("failed connects %+v, want one refused by tcp.test", failed)
	}
	var sent, recv int
	for _, e := range c.of(port2) {
		switch e.Kind {
		case event.ResetSent:
			sent++
		case event.ResetReceived:
			recv++
		}
	}
	if sent != 1 || recv != 1 {
		t.Fatalf("resets sent %d received %d, want 1 and 1", sent, recv)
	}
}
