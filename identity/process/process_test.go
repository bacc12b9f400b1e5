package process

import (
	"errors"
	"maps"
	"net/netip"
	"slices"
	"testing"
	"time"

	"go.uber.org/zap"

	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

type fakeHost struct {
	addrs  map[uint32][]netip.Addr
	owners map[uint64]string
	listed []uint32
	scans  int
}

func (h *fakeHost) NetnsAddrs(ns, _ uint32) ([]netip.Addr, error) {
	h.listed = append(h.listed, ns)
	if a, ok := h.addrs[ns]; ok {
		return a, nil
	}
	return nil, errors.New("gone")
}

func (h *fakeHost) Cgroup(uint32) ([]byte, error) { return nil, errors.New("no cgroups here") }

func (h *fakeHost) Owners() (map[uint64]string, error) {
	h.scans++
	return maps.Clone(h.owners), nil
}

// Namespaces: every namespace with addresses exists.
func (h *fakeHost) Namespaces() ([]uint32, error) {
	return slices.Sorted(maps.Keys(h.addrs)), nil
}

// asker queues lookups, answered when the test says (answer), as the
// agent's worker would be in its own time.
type asker struct {
	host   *fakeHost
	queue  []Lookup
	refuse bool
}

func (a *asker) Ask(l Lookup) bool {
	if a.refuse {
		return false
	}
	a.queue = append(a.queue, l)
	return true
}

func (a *asker) answer(r *Resolver) {
	for len(a.queue) > 0 {
		l := a.queue[0]
		a.queue = a.queue[1:]
		r.Answer((&Worker{host: a.host}).Do(l))
	}
}

func newResolver(h *fakeHost) *Resolver { return New(zap.NewNop(), &asker{host: h}) }

// feed is the agent's loop for one record: a record that must wait gets
// its answers first.
func feed(r *Resolver, e *event.TCP) {
	if r.Wait(e) {
		r.ask.(*asker).answer(r)
	}
	r.Observe(e)
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

func pair(src, dst string, port uint16, r identity.Reporter) identity.Pair {
	return identity.Pair{Source: identity.Workload{Name: src}, Destination: identity.Workload{Name: dst}, Port: port, Reporter: r}
}

func run(r *Resolver, e *event.TCP) identity.Pair {
	feed(r, e)
	return r.Identify(e)
}

func TestLoopbackBothEnds(t *testing.T) {
	r := newResolver(&fakeHost{})
	feed(r, &event.TCP{Kind: event.Listen, Sock: 1, Netns: 10, PID: 5, Comm: "nginx", Local: ap("0.0.0.0:80"), State: event.StateListen})
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
	r := newResolver(&fakeHost{})
	feed(r, &event.TCP{Kind: event.Listen, Sock: 1, Netns: 10, PID: 5, Comm: "redis", Local: ap("127.0.0.1:6379")})
	feed(r, &event.TCP{Kind: event.Listen, Sock: 2, Netns: 20, PID: 6, Comm: "memcached", Local: ap("127.0.0.1:6379")})
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
	r := newResolver(h)
	feed(r, &event.TCP{Kind: event.Listen, Sock: 1, Netns: 2, PID: 9, Comm: "tcpserver", Local: ap("0.0.0.0:8080")})
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
	feed(r, &event.TCP{Kind: event.Close, Sock: 2, Netns: 3})
	s = r.Identify(&event.TCP{Kind: event.Accept, Sock: 4, Netns: 2, Local: ap("10.244.1.3:8080"), Remote: ap("10.244.1.2:40000")})
	if s.Source.Name != identity.Unknown {
		t.Fatalf("source after close %q, want %q (local address, no live client)", s.Source.Name, identity.Unknown)
	}
	if len(h.listed) != 2 {
		t.Fatalf("namespaces listed %v, want each once", h.listed)
	}
}

func TestWorld(t *testing.T) {
	r := newResolver(&fakeHost{addrs: map[uint32][]netip.Addr{1: {netip.MustParseAddr("192.168.1.10")}}})
	feed(r, &event.TCP{Kind: event.Listen, Sock: 1, Netns: 1, PID: 2, Comm: "sshd", Local: ap("0.0.0.0:22")})
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
// connections get their owners from the socket inode. The agent scans
// once before any record; a socket the scan missed waits (Pending) for the
// one its record asks for, and is named by Retry once it answered.
func TestPreexistingSocketsFromSweep(t *testing.T) {
	h := &fakeHost{owners: map[uint64]string{100: "postgres", 101: "psql"}, addrs: map[uint32][]netip.Addr{1: {}}}
	r := newResolver(h)
	feed(r, &event.TCP{Kind: event.Snapshot, Sock: 1, Netns: 1, Inode: 100, State: event.StateListen, Local: ap("127.0.0.1:5432")})
	cl := &event.TCP{Kind: event.Snapshot, Sock: 2, Netns: 1, Inode: 101, State: event.StateEstablished, Local: ap("127.0.0.1:33000"), Remote: ap("127.0.0.1:5432")}
	first := run(r, cl)
	if want := (identity.Pair{Source: identity.Workload{Name: identity.Unknown}, Destination: identity.Workload{Name: identity.Unknown},
		Port: 5432, Reporter: identity.Client, Pending: true}); first != want {
		t.Fatalf("client before the scan %+v, want %+v", first, want)
	}
	if a := r.ask.(*asker); len(a.queue) != 1 || a.queue[0].Need != Owners {
		t.Fatalf("asked %v, want one scan", a.queue)
	}
	if got := r.Retry(first, cl); !got.Pending { // nothing answered yet
		t.Fatalf("retried before the answer: %+v", got)
	}
	r.ask.(*asker).answer(r)
	if got, want := r.Retry(first, cl), pair("psql", "postgres", 5432, identity.Client); got != want {
		t.Fatalf("client after the scan %+v, want %+v", got, want)
	}
	sv := &event.TCP{Kind: event.Snapshot, Sock: 3, Netns: 1, Inode: 0, State: event.StateEstablished, Local: ap("127.0.0.1:5432"), Remote: ap("127.0.0.1:33000")}
	if got, want := run(r, sv), pair("psql", "postgres", 5432, identity.Server); got != want {
		t.Fatalf("server %+v, want %+v", got, want)
	}
	feed(r, &event.TCP{Kind: event.ListenClose, Sock: 1, Netns: 1, Local: ap("127.0.0.1:5432")})
	if got := r.Identify(cl); got.Destination.Name != identity.Unknown {
		t.Fatalf("destination after the listener closed: %q", got.Destination.Name)
	}
	if h.scans != 1 {
		t.Fatalf("%d scans, want 1", h.scans)
	}
}

// A scan that did not find a socket is not repeated within rescanEvery:
// the socket is unknown at once, not pending.
func TestOwnerScansAreRateLimited(t *testing.T) {
	h := &fakeHost{owners: map[uint64]string{}, addrs: map[uint32][]netip.Addr{1: {}}}
	r := newResolver(h)
	now := time.Unix(1000, 0)
	r.now = func() time.Time { return now }
	r.Answer((&Worker{host: h}).Do(Lookup{Need: Owners})) // the agent's scan at start
	e := &event.TCP{Kind: event.Snapshot, Sock: 2, Netns: 1, Inode: 7, State: event.StateEstablished, Local: ap("127.0.0.1:33000"), Remote: ap("10.0.0.1:5432")}
	if got := run(r, e); got.Pending || got.Source.Name != identity.Unknown {
		t.Fatalf("%+v: want unknown, not pending, within a second of a scan", got)
	}
	now = now.Add(rescanEvery)
	h.owners[7] = "late"
	if got := r.Identify(e); !got.Pending {
		t.Fatalf("%+v: want pending once a scan may run", got)
	}
	if got := r.Identify(e); !got.Pending || len(r.ask.(*asker).queue) != 1 {
		t.Fatalf("%+v, %d asked: want pending on the one scan asked for", got, len(r.ask.(*asker).queue))
	}
	r.ask.(*asker).answer(r)
	if got := r.Identify(e); got.Pending || got.Source.Name != "late" {
		t.Fatalf("%+v after the scan", got)
	}
	if h.scans != 2 || r.Stats().Asked[Owners].Load() != 1 || r.Stats().Answered[Owners].Load() != 2 {
		t.Fatalf("scans %d, asked %d, answered %d: want 2, 1, 2", h.scans, r.Stats().Asked[Owners].Load(), r.Stats().Answered[Owners].Load())
	}
}

// A namespace's first record waits for its listing, and so does every
// record after it, from whichever namespace, until the answer.
func TestFirstRecordOfANamespaceWaits(t *testing.T) {
	h := &fakeHost{addrs: map[uint32][]netip.Addr{1: {}, 2: {netip.MustParseAddr("10.244.1.3")}}}
	r := newResolver(h)
	r.Answer((&Worker{host: h}).Do(Lookup{Need: Addrs, Netns: 1})) // known at start
	old := &event.TCP{Kind: event.Connect, Sock: 1, Netns: 1, PID: 3, Comm: "curl", Local: ap("10.244.1.2:40000"), Remote: ap("10.244.1.3:80")}
	if r.Wait(old) {
		t.Fatal("a record of a known namespace waits")
	}
	listen := &event.TCP{Kind: event.Listen, Sock: 2, Netns: 2, PID: 9, Comm: "nginx", Local: ap("0.0.0.0:80")}
	if !r.Wait(listen) || !r.Wait(old) || !r.Waiting() {
		t.Fatal("records do not wait behind a new namespace's listing")
	}
	if q := r.ask.(*asker).queue; !slices.Equal(q, []Lookup{{Need: Addrs, Netns: 2, PID: 9}, {Need: Namespaces}}) {
		t.Fatalf("asked %v, want namespace 2 once, through pid 9, and the host's namespaces", q)
	}
	r.ask.(*asker).answer(r)
	if r.Wait(listen) || r.Wait(old) {
		t.Fatal("still waiting after the answer")
	}
	r.Observe(listen)
	r.Observe(old)
	if got, want := r.Identify(old), pair("curl", "nginx", 80, identity.Client); got != want {
		t.Fatalf("%+v, want %+v", got, want)
	}

	// A worker that refuses: counted, nothing waits, the next record asks again.
	r.ask.(*asker).refuse = true
	e3 := &event.TCP{Kind: event.Listen, Sock: 3, Netns: 3, PID: 4, Comm: "x", Local: ap("0.0.0.0:81")}
	if r.Wait(e3) || r.Wait(e3) {
		t.Fatal("waits for a lookup the worker refused")
	}
	if got, ns := r.Stats().Dropped[Addrs].Load(), r.Stats().Dropped[Namespaces].Load(); got != 2 || ns != 2 {
		t.Fatalf("dropped %d listings and %d namespace lookups, want 2 each", got, ns)
	}
	// Released: a hold given up is counted and waits no more.
	r.ask.(*asker).refuse = false
	if !r.Wait(e3) {
		t.Fatal("no wait once the worker takes it")
	}
	r.Release()
	if r.Wait(e3) || r.Stats().Released.Load() != 1 {
		t.Fatalf("after Release: waiting %v, released %d", r.Waiting(), r.Stats().Released.Load())
	}
}

// An address belongs to the namespace whose record carried it last, also
// when it moves back (a pod's address given to another and returned):
// skipping a record whose address its namespace carried before must not
// keep a stale owner.
func TestAddressFollowsTheLastNamespace(t *testing.T) {
	r := newResolver(&fakeHost{})
	a := ap("10.244.1.5:80")
	rec := func(ns uint32) {
		r.Observe(&event.TCP{Kind: event.Connect, Sock: uint64(ns), Netns: ns, Local: a, Remote: ap("10.244.9.9:80")})
	}
	for i, ns := range []uint32{7, 7, 8, 7, 8, 8, 7} {
		rec(ns)
		if got, ok := r.NetnsOf(a.Addr()); !ok || got != ns {
			t.Fatalf("record %d (namespace %d): address in namespace %d, %v", i, ns, got, ok)
		}
	}
	r.Answer(Answer{Lookup: Lookup{Need: Addrs, Netns: 9}, Addrs: []netip.Addr{a.Addr()}}) // a listing says otherwise
	if got, _ := r.NetnsOf(a.Addr()); got != 9 {
		t.Fatalf("after namespace 9's listing: %d", got)
	}
	rec(7)
	if got, _ := r.NetnsOf(a.Addr()); got != 7 {
		t.Fatalf("namespace 7's record after the listing: %d", got)
	}
}

// A namespace with no socket of its own sends no record, so only the host
// can say it exists: a new namespace's first record asks for them all, and
// a refused connect to the silent one is named local (nobody listens:
// unknown), not the world.
func TestSilentNamespaceFoundWithANewOne(t *testing.T) {
	h := &fakeHost{addrs: map[uint32][]netip.Addr{
		1: {},
		2: {netip.MustParseAddr("10.244.7.2")}, // the client's
		3: {netip.MustParseAddr("10.244.7.3")}, // nothing listens, nothing connects
	}}
	r := newResolver(h)
	r.Answer((&Worker{host: h}).Do(Lookup{Need: Addrs, Netns: 1})) // known at start
	refused := &event.TCP{Kind: event.ConnectFailed, Sock: 1, Netns: 2, PID: 5, Comm: "curl", Local: ap("10.244.7.2:40000"), Remote: ap("10.244.7.3:19001")}
	if !r.Wait(refused) {
		t.Fatal("the client namespace's first record does not wait")
	}
	a := r.ask.(*asker)
	for _, l := range a.queue[:2] { // the client's addresses, then the namespaces: 3 is new
		r.Answer((&Worker{host: h}).Do(l))
	}
	a.queue = a.queue[2:]
	if !r.Waiting() || !slices.Equal(a.queue, []Lookup{{Need: Addrs, Netns: 3}}) {
		t.Fatalf("waiting %v, asked %v: want a wait for namespace 3's listing", r.Waiting(), a.queue)
	}
	a.answer(r)
	if r.Wait(refused) {
		t.Fatal("still waiting after every answer")
	}
	if got, want := run(r, refused), pair("curl", identity.Unknown, 19001, identity.Client); got != want {
		t.Fatalf("%+v, want %+v", got, want)
	}
	if !slices.Equal(h.listed, []uint32{1, 2, 3}) {
		t.Fatalf("listed %v, want 1, 2, 3 once each", h.listed)
	}
}
