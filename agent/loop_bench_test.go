package agent

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stratanet/strata/agent/config"
	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/agent/httpflow"
	"github.com/stratanet/strata/agent/route"
	"github.com/stratanet/strata/identity/process"
	"github.com/stratanet/strata/probes/event"
)

// fixedHost lists the storm namespaces' addresses; no process owns a socket.
type fixedHost map[uint32][]netip.Addr

func (h fixedHost) NetnsAddrs(ns, _ uint32) ([]netip.Addr, error) { return h[ns], nil }
func (fixedHost) Owners() (map[uint64]string, error)              { return map[uint64]string{}, nil }
func (fixedHost) Cgroup(uint32) ([]byte, error)                   { return nil, nil }
func (h fixedHost) Namespaces() ([]uint32, error)                 { return slices.Collect(maps.Keys(h)), nil }

// asked keeps the lookups for the loop to answer after the batch, as a
// worker that is never behind would.
type asked struct {
	w    *process.Worker
	todo []process.Lookup
}

func (a *asked) Ask(l process.Lookup) bool { a.todo = append(a.todo, l); return true }

// BenchmarkStorms: the loop's work for storms in 1, 8 and 64 pairs of
// namespaces at once, each connection's records as the kernel sends them
// (connect, accept, the client's RST and both closes), with a sweep's end
// in every namespace each 2000 connections, through the loop's own path:
// batches of 512 records, order, the stages (resolver, flow table, HTTP's
// closes). The cost per connection must not grow with the namespaces.
func BenchmarkStorms(b *testing.B) {
	for _, pairs := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("pairs=%d", pairs), func(b *testing.B) {
			host := fixedHost{}
			a := &asked{w: process.NewWorker(host, 1)}
			r := process.New(zap.NewNop(), a)
			table := flow.NewTable(zap.NewNop(), r, flow.DefaultOptions())
			routes, _ := route.New(nil)
			requests := httpflow.New(table, routes, nil, func(uint64) time.Time { return time.Time{} }, "", httpOptions(config.Default()))
			st := &stages{resolver: r, table: table, requests: requests}
			wait := func(rec *event.Record) bool { return r.Wait(&rec.TCP) }
			ord := newOrder(wait, st.apply, r.Release)
			now := time.Unix(0, 0)
			srvAddr := func(p int) netip.Addr { return netip.AddrFrom4([4]byte{10, 244, byte(p), 1}) }
			batch := make([]event.Record, 0, maxBatch)
			add := func(e event.TCP) {
				if batch = append(batch, event.Record{TCP: e}); len(batch) == cap(batch) {
					ord.push(batch, now)
					for len(a.todo) > 0 { // a resume may ask again
						l := a.todo[0]
						a.todo = a.todo[1:]
						r.Answer(a.w.Do(l))
						ord.resume(now)
					}
					clear(batch)
					batch = batch[:0]
				}
			}
			for p := range pairs {
				host[uint32(1000+2*p)] = []netip.Addr{srvAddr(p)}
				host[uint32(1001+2*p)] = []netip.Addr{netip.AddrFrom4([4]byte{10, 244, byte(p), 2})}
				add(event.TCP{Kind: event.Listen, Sock: uint64(1 + p), Netns: uint32(1000 + 2*p), PID: 1, Comm: "tcpserver",
					Local: netip.AddrPortFrom(srvAddr(p), 9000), State: event.StateListen})
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				p := i % pairs
				srv, cli := uint32(1000+2*p), uint32(1001+2*p)
				sa := netip.AddrPortFrom(srvAddr(p), 9000)
				ca := netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 244, byte(p), 2}), uint16(1024+(i/pairs)%60000))
				sock := 0xffff000000000000 + uint64(i%4096)*4096
				add(event.TCP{Kind: event.Connect, Sock: sock, Netns: cli, PID: 7, Comm: "tcpclient", Local: ca, Remote: sa, State: event.StateEstablished})
				add(event.TCP{Kind: event.Accept, Sock: sock + 2048, Netns: srv, Local: sa, Remote: ca, State: event.StateEstablished})
				add(event.TCP{Kind: event.Close, Sock: sock, Netns: cli, Local: ca, Remote: sa, Counters: event.Counters{SentBytes: 100, ReceivedBytes: 100}})
				add(event.TCP{Kind: event.ResetSent, Sock: sock, Netns: cli, Local: ca, Remote: sa})
				add(event.TCP{Kind: event.ResetReceived, Sock: sock + 2048, Netns: srv, Local: sa, Remote: ca, State: event.StateEstablished})
				add(event.TCP{Kind: event.Close, Sock: sock + 2048, Netns: srv, Local: sa, Remote: ca, Counters: event.Counters{SentBytes: 100, ReceivedBytes: 100}})
				if i%2000 == 0 {
					for q := range 2 * pairs {
						add(event.TCP{Kind: event.SweepEnd, Netns: uint32(1000 + q), Sweep: uint32(i / 2000)})
					}
				}
			}
			if n := r.Stats().Released.Load(); n != 0 {
				b.Fatalf("%d holds given up: every namespace was listed", n)
			}
		})
	}
}
