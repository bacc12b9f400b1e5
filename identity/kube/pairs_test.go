package kube

import (
	"net/netip"
	"testing"
	"time"

	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

// host names like the process resolver: the local process by comm, a
// remote peer "world".
type host struct{}

func (host) Observe(*event.TCP) {}
func (host) Forget(uint64)      {}
func (host) Identify(e *event.TCP) identity.Pair {
	if e.Kind == event.Accept {
		return identity.Pair{Source: identity.Workload{Name: identity.World}, Destination: identity.Workload{Name: e.Comm}, Port: e.Local.Port(), Reporter: identity.Server}
	}
	return identity.Pair{Source: identity.Workload{Name: e.Comm}, Destination: identity.Workload{Name: identity.World}, Port: e.Remote.Port(), Reporter: identity.Client}
}

type dir map[netip.Addr]Entry

func (d dir) Lookup(a netip.Addr, _ time.Time) (Entry, bool) { e, ok := d[a]; return e, ok }

const hostNetns = 1

func TestPairs(t *testing.T) {
	pod, vip := netip.MustParseAddr("10.244.0.5"), netip.MustParseAddr("10.96.0.10")
	other := netip.MustParseAddr("10.244.0.9")
	public := netip.MustParseAddr("203.0.113.7")
	conn := func(kind event.Kind, netns uint32, local, remote netip.Addr) *event.TCP {
		l, r := netip.AddrPortFrom(local, 40000), netip.AddrPortFrom(remote, 80)
		if kind == event.Accept {
			l, r = netip.AddrPortFrom(local, 8080), netip.AddrPortFrom(remote, 40000)
		}
		return &event.TCP{Kind: kind, Netns: netns, Comm: "proc", Local: l, Remote: r}
	}
	w := func(ns, name, svc string) identity.Workload {
		return identity.Workload{Namespace: ns, Name: name, Service: svc}
	}
	d := dir{pod: {"shop", "frontend", ""}, vip: {"shop", "backend", "backend"}}
	for _, tc := range []struct {
		name     string
		e        *event.TCP
		src, dst identity.Workload
		pending  bool
	}{
		{"pod to Service", conn(event.Connect, 7, pod, vip), w("shop", "frontend", ""), w("shop", "backend", "backend"), false},
		{"server side", conn(event.Accept, 7, pod, other), w("", "world", ""), w("shop", "frontend", ""), true},
		{"unknown pod calls", conn(event.Connect, 7, other, vip), w("", "proc", ""), w("shop", "backend", "backend"), true},
		{"host process calls a pod", conn(event.Connect, hostNetns, netip.MustParseAddr("192.168.1.4"), pod), w("", "host", ""), w("shop", "frontend", ""), false},
		{"a pod not reported yet, by its process's cgroup", withPID(conn(event.Connect, 7, other, vip), 43), w("shop", "new-pod", ""), w("shop", "backend", "backend"), false},
		{"host-network pod calls a pod", withPID(conn(event.Connect, hostNetns, netip.MustParseAddr("192.168.1.4"), pod), 42), w("kube-system", "agent", ""), w("shop", "frontend", ""), false},
		{"host process whose cgroup is being read: the node meanwhile", withPID(conn(event.Connect, hostNetns, netip.MustParseAddr("192.168.1.4"), pod), 44), w("", "host", ""), w("shop", "frontend", ""), true},
		{"pod calls a host server", conn(event.Accept, hostNetns, netip.MustParseAddr("192.168.1.4"), pod), w("shop", "frontend", ""), w("", "host", ""), false},
		{"pod calls the node", conn(event.Connect, 7, pod, nodeIP), w("shop", "frontend", ""), w("", "host", ""), false},
		{"pod calls another namespace of the node", conn(event.Connect, 7, pod, otherNetnsIP), w("shop", "frontend", ""), w("", "world", ""), true},
		{"pod calls the internet", conn(event.Connect, 7, pod, public), w("shop", "frontend", ""), w("", "world", ""), false},
		{"pod calls an unknown private address", conn(event.Connect, 7, pod, other), w("shop", "frontend", ""), w("", "world", ""), true},
		{"loopback in a pod", conn(event.Connect, 7, netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.1")), w("", "proc", ""), w("", "world", ""), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Pairs{Host: host{}, Dir: d, HostNetns: hostNetns, Process: procs, NetnsOf: netnsOf}.Identify(tc.e)
			if p.Source != tc.src || p.Destination != tc.dst || p.Pending != tc.pending {
				t.Errorf("got %+v -> %+v pending %v, want %+v -> %+v pending %v", p.Source, p.Destination, p.Pending, tc.src, tc.dst, tc.pending)
			}
		})
	}

	t.Run("named late, then kept", func(t *testing.T) {
		e := conn(event.Connect, 7, other, vip)
		d2 := dir{vip: d[vip]}
		pairs := Pairs{Host: host{}, Dir: d2, HostNetns: hostNetns}
		p := pairs.Identify(e)
		if !p.Pending {
			t.Fatal("an unknown pod's connection is not pending")
		}
		d2[other] = Entry{"shop", "late-pod", ""}
		if p = pairs.Retry(p, e); p.Pending || p.Source != w("shop", "late-pod", "") {
			t.Fatalf("retry: %+v", p)
		}
		d2[other] = Entry{"shop", "reused", ""}
		if p = pairs.Retry(p, e); p.Source != w("shop", "late-pod", "") {
			t.Errorf("a named end was renamed: %+v", p.Source)
		}
	})
}

func withPID(e *event.TCP, pid uint32) *event.TCP { e.PID = pid; return e }

// procs knows one host-network pod's process.
// pid 44's cgroup is still being read.
func procs(pid uint32) (Entry, bool, bool) {
	switch pid {
	case 42:
		return Entry{Namespace: "kube-system", Workload: "agent"}, true, false
	case 43:
		return Entry{Namespace: "shop", Workload: "new-pod"}, true, false
	case 44:
		return Entry{}, false, true
	}
	return Entry{}, false, false
}

var nodeIP, otherNetnsIP = netip.MustParseAddr("192.168.1.4"), netip.MustParseAddr("10.250.1.10")

func netnsOf(a netip.Addr) (uint32, bool) {
	switch a {
	case nodeIP:
		return hostNetns, true
	case otherNetnsIP:
		return 99, true
	}
	return 0, false
}

// scanning names a process only once its scan has come back, as the host
// resolver does for a socket it has not seen an owner of yet.
type scanning struct{ scanned *bool }

func (scanning) Observe(*event.TCP) {}
func (scanning) Forget(uint64)      {}
func (s scanning) Identify(e *event.TCP) identity.Pair {
	name := identity.Unknown
	if *s.scanned {
		name = "redis"
	}
	return identity.Pair{Source: identity.Workload{Name: e.Comm}, Destination: identity.Workload{Name: name}, Port: e.Remote.Port(), Reporter: identity.Client, Pending: !*s.scanned}
}

// A loopback peer the host resolver cannot name yet keeps the pair pending,
// and the retry after the scan names it.
func TestLoopbackNamedAfterScan(t *testing.T) {
	lo := netip.MustParseAddr("127.0.0.1")
	e := &event.TCP{Kind: event.Connect, Netns: 7, Comm: "app", Local: netip.AddrPortFrom(lo, 40000), Remote: netip.AddrPortFrom(lo, 6379)}
	scanned := false
	p := Pairs{Host: scanning{&scanned}, Dir: dir{}, HostNetns: hostNetns}
	pair := p.Identify(e)
	if !pair.Pending || pair.Source.Name != "app" || pair.Destination.Name != identity.Unknown {
		t.Fatalf("before the scan: %+v, want app -> unknown, pending", pair)
	}
	scanned = true
	pair = p.Retry(pair, e)
	if pair.Pending || pair.Source.Name != "app" || pair.Destination.Name != "redis" {
		t.Fatalf("after the scan: %+v, want app -> redis, settled", pair)
	}
}
