package process

import (
	"errors"
	"net/netip"
	"testing"

	"go.uber.org/zap"

	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

type fakeHost struct {
	addrs  map[uint32][]netip.Addr
	owners map[uint64]string
	listed []uint32
}

func (h *fakeHost) NetnsAddrs(ns, _ uint32) ([]netip.Addr, error) {
	h.listed = append(h.listed, ns)
	if a, ok := h.addrs[ns]; ok {
		return a, nil
	}
	return nil, errors.New("gone")
}

func (h *fakeHost) SocketOwner(ino uint64) (string, bool) {
	n, ok := h.owners[ino]
	return n, ok
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func pair(src, dst string, port uint16, r identity.Reporter) identity.Pair {
	return identity.Pair{Source: identity.Workload{Name: src}, Destination: identity.Workload{Name: dst}, Port: port, Reporter: r}
}

func run(r *Resolver, e *event.TCP) identity.Pair {
	r.Observe(e)
	return r.Identify(e)
}

func TestLoopbackBothEnds(t *testing.T) {
	r := New(zap.NewNop(), &fakeHost{})
	r.Observe(&event.TCP{Kind: event.Listen, Sock: 1, Netns: 10, PID: 5, Comm: "nginx", Local: ap("0.0.0.0:80"), State: event.StateListen})
	c := run(r, &event.TCP{Kind: event.Connect, Sock: 2, Netns: 10, PID: 6, Comm: "curl", Local: ap("127.0.0.1:5000"), Remote: ap("127.0.0.1:80")})
	if want := pair("curl", "nginx", 80, identity.Client); c != want {
		t.Fatalf("client side %+v, want %+v", c, want)
	}
	s := run(r, &event.TCP{Kind: event.Accept, Sock: 3, Netns: 10, Local: ap("127.0.0.1:80"), Remote: ap("127.0.0.1:5000")})
	if want := pair("curl", "nginx", 80, identity.Server); s != want {
		t.Fatalf("server side %+v, want %+v", s, want)
	}
}

// Every namespace has its own 127.0.0.1: a listener in one must not name
// connections in another.
func TestLoopbackIsPerNamespace(t *testing.T) {
	r := New(zap.NewNop(), &fakeHost{})
	r.Observe(&event.TCP{Kind: event.Listen, Sock: 1, Netns: 10, PID: 5, Comm: "redis", Local: ap("127.0.0.1:6379")})
	r.Observe(&event.TCP{Kind: event.Listen, Sock: 2, Netns: 20, PID: 6, Comm: "memcached", Local: ap("127.0.0.1:6379")})
	got := run(r, &event.TCP{Kind: event.Connect, Sock: 3, Netns: 20, PID: 7, Comm: "app", Local: ap("127.0.0.1:4000"), Remote: ap("127.0.0.1:6379")})
	if got.Destination.Name != "memcached" {
		t.Fatalf("destination %q, want memcached", got.Destination.Name)
	}
	got = run(r, &event.TCP{Kind: event.Connect, Sock: 4, Netns: 30, PID: 8, Comm: "app", Local: ap("127.0.0.1:4001"), Remote: ap("127.0.0.1:6379")})
	if got.Destination.Name != identity.Unknown {
		t.Fatalf("destination %q in a namespace with no listener, want %q", got.Destination.Name, identity.Unknown)
	}
}

// A client in one namespace calls a wildcard listener in another before that
// server ever accepted anything: the namespace's address list resolves it.
func TestAcrossNamespaces(t *testing.T) {
	h := &fakeHost{addrs: map[uint32][]netip.Addr{
		2: {netip.MustParseAddr("10.244.1.3"), netip.MustParseAddr("127.0.0.1")},
		3: {netip.MustParseAddr("10.244.1.2")},
	}}
	r := New(zap.NewNop(), h)
	r.Observe(&event.TCP{Kind: event.Listen, Sock: 1, Netns: 2, PID: 9, Comm: "tcpserver", Local: ap("0.0.0.0:8080")})
	c := run(r, &event.TCP{Kind: event.Connect, Sock: 2, Netns: 3, PID: 11, Comm: "tcpclient", Local: ap("10.244.1.2:40000"), Remote: ap("10.244.1.3:8080")})
	if want := pair("tcpclient", "tcpserver", 8080, identity.Client); c != want {
		t.Fatalf("client side %+v, want %+v", c, want)
	}
	s := run(r, &event.TCP{Kind: event.Accept, Sock: 3, Netns: 2, Local: ap("10.244.1.3:8080"), Remote: ap("10.244.1.2:40000")})
	if want := pair("tcpclient", "tcpserver", 8080, identity.Server); s != want {
		t.Fatalf("server side %+v, want %+v", s, want)
	}
	// Once the client socket closed, a new connection from the same tuple
	// (say, from another host after a NAT) is not mistaken for it.
	r.Observe(&event.TCP{Kind: event.Close, Sock: 2, Netns: 3})
	s = r.Identify(&event.TCP{Kind: event.Accept, Sock: 4, Netns: 2, Local: ap("10.244.1.3:8080"), Remote: ap("10.244.1.2:40000")})
	if s.Source.Name != identity.Unknown {
		t.Fatalf("source after close %q, want %q (local address, no live client)", s.Source.Name, identity.Unknown)
	}
	if len(h.listed) != 2 {
		t.Fatalf("namespaces listed %v, want each once", h.listed)
	}
}

func TestWorld(t *testing.T) {
	r := New(zap.NewNop(), &fakeHost{addrs: map[uint32][]netip.Addr{1: {netip.MustParseAddr("192.168.1.10")}}})
	r.Observe(&event.TCP{Kind: event.Listen, Sock: 1, Netns: 1, PID: 2, Comm: "sshd", Local: ap("0.0.0.0:22")})
	c := run(r, &event.TCP{Kind: event.Connect, Sock: 2, Netns: 1, PID: 3, Comm: "curl", Local: ap("192.168.1.10:5000"), Remote: ap("93.184.216.34:443")})
	if want := pair("curl", identity.World, 443, identity.Client); c != want {
		t.Fatalf("%+v, want %+v", c, want)
	}
	s := run(r, &event.TCP{Kind: event.Accept, Sock: 3, Netns: 1, Local: ap("192.168.1.10:22"), Remote: ap("203.0.113.7:61000")})
	if want := pair(identity.World, "sshd", 22, identity.Server); s != want {
		t.Fatalf("%+v, want %+v", s, want)
	}
}

// Sockets that predate the agent are first seen by a sweep: listeners and
// connections get their owners from the socket inode.
func TestPreexistingSocketsFromSweep(t *testing.T) {
	h := &fakeHost{owners: map[uint64]string{100: "postgres", 101: "psql"}, addrs: map[uint32][]netip.Addr{1: {}}}
	r := New(zap.NewNop(), h)
	r.Observe(&event.TCP{Kind: event.Snapshot, Sock: 1, Netns: 1, Inode: 100, State: event.StateListen, Local: ap("127.0.0.1:5432")})
	cl := &event.TCP{Kind: event.Snapshot, Sock: 2, Netns: 1, Inode: 101, State: event.StateEstablished, Local: ap("127.0.0.1:33000"), Remote: ap("127.0.0.1:5432")}
	if got, want := run(r, cl), pair("psql", "postgres", 5432, identity.Client); got != want {
		t.Fatalf("client %+v, want %+v", got, want)
	}
	sv := &event.TCP{Kind: event.Snapshot, Sock: 3, Netns: 1, Inode: 0, State: event.StateEstablished, Local: ap("127.0.0.1:5432"), Remote: ap("127.0.0.1:33000")}
	if got, want := run(r, sv), pair("psql", "postgres", 5432, identity.Server); got != want {
		t.Fatalf("server %+v, want %+v", got, want)
	}
	r.Observe(&event.TCP{Kind: event.ListenClose, Sock: 1, Netns: 1, Local: ap("127.0.0.1:5432")})
	if got := r.Identify(cl); got.Destination.Name != identity.Unknown {
		t.Fatalf("destination after the listener closed: %q", got.Destination.Name)
	}
}
