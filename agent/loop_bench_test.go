package agent

import (
	"fmt"
	"net/netip"
	"testing"

	"go.uber.org/zap"

	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/identity/process"
	"github.com/stratanet/strata/probes/event"
)

// fixedHost lists the storm namespaces' addresses; no process owns a socket.
type fixedHost map[uint32][]netip.Addr

func (h fixedHost) NetnsAddrs(ns, _ uint32) ([]netip.Addr, error) { return h[ns], nil }
func (fixedHost) Owners() (map[uint64]string, error)              { return map[uint64]string{}, nil }

// inline answers at once, as a worker that is never behind.
type inline struct {
	w *process.Worker
	r *process.Resolver
}

func (a *inline) Ask(l process.Lookup) bool { a.r.Answer(a.w.Do(l)); return true }

// BenchmarkStorms: the loop's work for storms in 1, 8 and 64 pairs of
// namespaces at once, each connection's records as the kernel sends them
// (connect, accept, the client's RST and both closes), with a sweep's end
// in every namespace each 2000 connections: the cost per connection must
// not grow with the namespaces.
func BenchmarkStorms(b *testing.B) {
	for _, pairs := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("pairs=%d", pairs), func(b *testing.B) {
			host := fixedHost{}
			a := &inline{w: process.NewWorker(host, 1)}
			r := process.New(zap.NewNop(), a)
			a.r = r
			table := flow.NewTable(zap.NewNop(), r, flow.DefaultOptions())
			apply := func(e *event.TCP) { r.Wait(e); r.Observe(e); table.Apply(e) }
			srvAddr := func(p int) netip.Addr { return netip.AddrFrom4([4]byte{10, 244, byte(p), 1}) }
			for p := range pairs {
				host[uint32(1000+2*p)] = []netip.Addr{srvAddr(p)}
				host[uint32(1001+2*p)] = []netip.Addr{netip.AddrFrom4([4]byte{10, 244, byte(p), 2})}
				apply(&event.TCP{Kind: event.Listen, Sock: uint64(1 + p), Netns: uint32(1000 + 2*p), PID: 1, Comm: "tcpserver",
					Local: netip.AddrPortFrom(srvAddr(p), 9000), State: event.StateListen})
			}
			var recs [6]event.TCP
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p := i % pairs
				srv, cli := uint32(1000+2*p), uint32(1001+2*p)
				sa := netip.AddrPortFrom(srvAddr(p), 9000)
				ca := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 244, byte(p), 2}), uint16(1024+(i/pairs)%60000))
				sock := 0xffff000000000000 + uint64(i%4096)*4096
				// Filled in place, as the reader fills its pooled batches.
				recs[0] = event.TCP{Kind: event.Connect, Sock: sock, Netns: cli, PID: 7, Comm: "tcpclient", Local: ca, Remote: sa, State: event.StateEstablished}
				recs[1] = event.TCP{Kind: event.Accept, Sock: sock + 2048, Netns: srv, Local: sa, Remote: ca, State: event.StateEstablished}
				recs[2] = event.TCP{Kind: event.Close, Sock: sock, Netns: cli, Local: ca, Remote: sa, Counters: event.Counters{SentBytes: 100, ReceivedBytes: 100}}
				recs[3] = event.TCP{Kind: event.ResetSent, Sock: sock, Netns: cli, Local: ca, Remote: sa}
				recs[4] = event.TCP{Kind: event.ResetReceived, Sock: sock + 2048, Netns: srv, Local: sa, Remote: ca, State: event.StateEstablished}
				recs[5] = event.TCP{Kind: event.Close, Sock: sock + 2048, Netns: srv, Local: sa, Remote: ca, Counters: event.Counters{SentBytes: 100, ReceivedBytes: 100}}
				for j := range recs {
					apply(&recs[j])
				}
				if i%2000 == 0 {
					for q := range 2 * pairs {
						recs[0] = event.TCP{Kind: event.SweepEnd, Netns: uint32(1000 + q), Sweep: uint32(i / 2000)}
						apply(&recs[0])
					}
				}
			}
		})
	}
}
