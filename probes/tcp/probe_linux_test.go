package tcp

import (
	"context"
	"io"
	"net"
	"os"
	"sync"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stratanet/strata/probes/event"
)

func TestProbeDump(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("root")
	}
	p, err := Open(zap.NewNop(), Options{RingBytes: 1 << 22, WakeupBytes: 1, Poll: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Close()
	t.Log(p.Status())
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var evs []event.TCP
	go p.Read(ctx, func(e event.TCP) { mu.Lock(); evs = append(evs, e); mu.Unlock() }, func(err error) { t.Log(err) })
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	go func() {
		c, _ := ln.Accept()
		b := make([]byte, 100)
		io.ReadFull(c, b)
		c.Write(make([]byte, 200))
		time.Sleep(500 * time.Millisecond)
		c.Close()
	}()
	c, _ := net.Dial("tcp", ln.Addr().String())
	c.Write(make([]byte, 100))
	io.ReadFull(c, make([]byte, 200))
	time.Sleep(200 * time.Millisecond)
	p.Sweep(7)
	io.ReadAll(c)
	c.Close()
	time.Sleep(300 * time.Millisecond)
	cancel()
	mu.Lock()
	for _, e := range evs {
		if e.Local.Port() == ln.Addr().(*net.TCPAddr).AddrPort().Port() || e.Remote.Port() == ln.Addr().(*net.TCPAddr).AddrPort().Port() || e.Kind == event.SweepEnd {
			t.Logf("%+v", e)
		}
	}
	mu.Unlock()
}
