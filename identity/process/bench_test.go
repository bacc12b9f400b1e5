package process

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/stratanet/strata/probes/event"
)

// BenchmarkConnections: one connection's records (connect, accept, two
// closes) named at both ends, the pairs spread over namespaces: what the
// loop spends per connection must not grow with their number.
func BenchmarkConnections(b *testing.B) {
	for _, pairs := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("namespaces=%d", 2*pairs), func(b *testing.B) {
			h := &fakeHost{addrs: map[uint32][]netip.Addr{}, owners: map[uint64]string{}}
			r := newResolver(h)
			for p := range pairs {
				srv, cli := uint32(1000+2*p), uint32(1001+2*p)
				h.addrs[srv] = []netip.Addr{netip.AddrFrom4([4]byte{10, 244, byte(p), 1})}
				h.addrs[cli] = []netip.Addr{netip.AddrFrom4([4]byte{10, 244, byte(p), 2})}
				feed(r, &event.TCP{Kind: event.Listen, Sock: uint64(srv), Netns: srv, PID: 1, Comm: "server", Local: netip.AddrPortFrom(netip.IPv4Unspecified(), 80)})
			}
			b.ResetTimer()
			for i := range b.N {
				p := i % pairs
				srv, cli := uint32(1000+2*p), uint32(1001+2*p)
				sa := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 244, byte(p), 1}), 80)
				ca := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 244, byte(p), 2}), uint16(1024+i%60000))
				sock := uint64(1<<20 + 2*i)
				for _, e := range []event.TCP{
					{Kind: event.Connect, Sock: sock, Netns: cli, PID: 2, Comm: "client", Local: ca, Remote: sa},
					{Kind: event.Accept, Sock: sock + 1, Netns: srv, Local: sa, Remote: ca},
				} {
					feed(r, &e)
					r.Identify(&e)
				}
				feed(r, &event.TCP{Kind: event.Close, Sock: sock, Netns: cli, Local: ca, Remote: sa})
				feed(r, &event.TCP{Kind: event.Close, Sock: sock + 1, Netns: srv, Local: sa, Remote: ca})
			}
		})
	}
}
