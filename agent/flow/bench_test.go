package flow

import (
	"net/netip"
	"testing"

	"go.uber.org/zap"

	"github.com/stratanet/strata/probes/event"
)

// A new connection per request: each one opened, then closed, with socket
// addresses reused the way the kernel's slab reuses them.
func BenchmarkOpenClose(b *testing.B) {
	tb := NewTable(zap.NewNop(), &benchID{}, DefaultOptions())
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		sock := 0xffff000000000000 + uint64(i%512)*2048
		local := netip.AddrPortFrom(cli.Addr(), uint16(1024+i%60000))
		open := &event.TCP{Kind: event.Connect, Sock: sock, Netns: 1, Comm: "a", PID: 1, Local: local, Remote: srv, State: event.StateEstablished}
		tb.Apply(open)
		closed := *open
		closed.Kind = event.Close
		closed.Counters = event.Counters{SentBytes: 100, ReceivedBytes: 200}
		tb.Apply(&closed)
	}
}

// benchID is fakeID without the memory of forgotten sockets.
type benchID struct{ fakeID }

func (*benchID) Forget(uint64) {}
