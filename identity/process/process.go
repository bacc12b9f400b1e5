// Package process is standalone identity: each end of a connection on this
// host is named after the process that owns its socket; anything else is
// the world. Only the agent's event loop calls it, so it holds no locks
// (but its counters, which a scrape reads).
//
// What the event stream cannot tell (a namespace's addresses, the owner of
// a socket whose record carries no process) the host answers, and its
// calls block (setns, a readlink of every fd). So the resolver never calls
// the host: it asks (an Asker, the agent's Worker, takes the lookup
// without waiting) and the answer comes back through the event loop
// (Answer), in its turn among the kernel's records. Order is kept where it
// matters:
//   - a namespace seen for the first time: its addresses name every later
//     connection to it, so the loop holds the records from this one on
//     (Wait says so) until the answer comes, then goes on in order;
//   - a socket whose owner is not known: its pair is Pending, and the flow
//     table's late naming names it again (Retry) once the scan it asked
//     for has answered; nothing else waits for it.
package process

import (
	"net/netip"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

// Host answers what the event stream cannot: the addresses of a network
// namespace and the owners of socket inodes (both from /proc on Linux).
// Its calls block; only a Worker makes them.
type Host interface {
	// NetnsAddrs lists the addresses of namespace netns; pid, when not
	// zero, is a process known to live in it.
	NetnsAddrs(netns, pid uint32) ([]netip.Addr, error)
	// Owners names the process holding each socket inode.
	Owners() (map[uint64]string, error)
	// Namespaces lists the host's network namespaces.
	Namespaces() ([]uint32, error)
	// Cgroup reads a process's cgroup file (/proc/PID/cgroup).
	Cgroup(pid uint32) ([]byte, error)
}

// Limits bound the resolver's memory whatever the traffic.
const (
	maxClients   = 1 << 20
	maxListeners = 1 << 16
	maxAddrs     = 1 << 16
)

// How often a namespace's addresses are listed again, and how often at
// most every fd is read to find sockets' owners.
const (
	refreshAddrs = 30 * time.Second
	rescanEvery  = time.Second
)

type listener struct {
	addr  netip.Addr // unspecified for a wildcard listener
	owner string     // "" until known: then inode names it
	inode uint64
}

// client is a live client socket's owner: its name, or its inode until the
// name is known.
type client struct {
	owner string
	inode uint64
}

type listenKey struct {
	netns uint32
	port  uint16
}

// tuple keys a connection by its ends; loopback tuples add the namespace,
// since every namespace has its own 127.0.0.1.
type tuple struct {
	netns         uint32
	local, remote netip.AddrPort
}

type Resolver struct {
	log *zap.Logger
	ask Asker
	now func() time.Time

	listeners map[listenKey]map[uint64]listener // by socket
	listenAt  map[uint64]listenKey              // listening socket -> its key
	clients   map[tuple]client                  // live client sockets -> owner
	clientOf  map[uint64]tuple
	addrs     map[netip.Addr]uint32 // local address -> namespace
	lastAddr  map[uint32]netip.Addr // namespace -> an address addrs gives it, the one its records last carried
	listed    map[uint32]time.Time  // namespaces whose addresses were asked for
	first     map[uint32]bool       // first listings asked and not answered: the loop holds records
	finding   bool                  // the host's namespaces were asked for and have not answered
	findHold  bool                  // ... and the loop holds records for them

	owners   map[uint64]string // socket inode -> process, from the last scan
	scanned  time.Time         // when the last scan was asked for
	scanning bool              // a scan was asked for and has not answered

	stats Stats
}

// Stats count the resolver's lookups, for the agent's own metrics. A
// lookup the worker could not take (Dropped) or records that stopped
// waiting for one (Released) are named less well than they could have
// been, never silently.
type Stats struct {
	Asked, Answered, Failed, Dropped [Cgroup + 1]atomic.Uint64 // by Need
	Released                         atomic.Uint64             // holds given up (Release)
}

var (
	_ identity.Identifier = (*Resolver)(nil)
	_ identity.Late       = (*Resolver)(nil)
)

// New resolves with what ask's answers bring (see Answer).
func New(log *zap.Logger, ask Asker) *Resolver {
	return &Resolver{
		log:       log,
		ask:       ask,
		now:       time.Now,
		listeners: map[listenKey]map[uint64]listener{},
		listenAt:  map[uint64]listenKey{},
		clients:   map[tuple]client{},
		clientOf:  map[uint64]tuple{},
		addrs:     map[netip.Addr]uint32{},
		lastAddr:  map[uint32]netip.Addr{},
		listed:    map[uint32]time.Time{},
		first:     map[uint32]bool{},
		owners:    map[uint64]string{},
	}
}

// Stats are the resolver's counters; safe from any goroutine.
func (r *Resolver) Stats() *Stats { return &r.stats }

// Ask asks a for l and counts it: asked, and dropped when a cannot take it
// (the worker's queue is full).
func (s *Stats) Ask(a Asker, l Lookup) bool {
	s.Asked[l.Need].Add(1)
	if a.Ask(l) {
		return true
	}
	s.Dropped[l.Need].Add(1)
	return false
}

func key(netns uint32, local, remote netip.AddrPort) tuple {
	if !local.Addr().IsLoopback() {
		netns = 0
	}
	return tuple{netns, local, remote}
}

// Observe implements identity.Identifier.
func (r *Resolver) Observe(e *event.TCP) {
	if e.Kind == event.SweepEnd {
		// A refresh: what is known meanwhile stays true enough that
		// nothing waits for it.
		if last, ok := r.listed[e.Netns]; ok && r.now().Sub(last) > refreshAddrs {
			r.askAddrs(e.Netns, 0)
		}
		return
	}
	if a := e.Local.Addr(); a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() {
		r.addAddr(a, e.Netns)
	}
	switch e.Kind {
	case event.Listen:
		r.addListener(e, e.Comm)
	case event.ListenClose:
		r.Forget(e.Sock)
	case event.Snapshot:
		if e.State == event.StateListen {
			if _, ok := r.listenerOf(e.Netns, e.Local.Port(), e.Sock); !ok {
				r.addListener(e, "") // named by its inode
			}
		} else if _, ok := r.clientOf[e.Sock]; !ok && !r.isServer(e) {
			r.addClient(e) // predates the agent
		}
	case event.Connect:
		r.addClient(e)
	case event.Close:
		r.Forget(e.Sock)
	}
}

func (r *Resolver) addClient(e *event.TCP) {
	if len(r.clients) < maxClients {
		t := key(e.Netns, e.Local, e.Remote)
		c := client{inode: e.Inode}
		if e.PID != 0 && e.Comm != "" {
			c.owner = e.Comm
		}
		r.clients[t] = c
		r.clientOf[e.Sock] = t
	}
}

// Forget implements identity.Identifier.
func (r *Resolver) Forget(sock uint64) {
	if t, ok := r.clientOf[sock]; ok {
		delete(r.clients, t)
		delete(r.clientOf, sock)
	}
	if k, ok := r.listenAt[sock]; ok {
		delete(r.listenAt, sock)
		delete(r.listeners[k], sock)
		if len(r.listeners[k]) == 0 {
			delete(r.listeners, k)
		}
	}
}

// Identify implements identity.Identifier. An end whose owner a scan
// asked for may name makes the pair Pending (Retry names it again).
func (r *Resolver) Identify(e *event.TCP) identity.Pair {
	var wait bool
	if r.isServer(e) {
		return identity.Pair{
			Source:      identity.Workload{Name: r.peerClient(e, &wait)},
			Destination: identity.Workload{Name: r.listenerOwner(e.Netns, e.Local, e, &wait)},
			Port:        e.Local.Port(),
			Reporter:    identity.Server,
			Pending:     wait,
		}
	}
	return identity.Pair{
		Source:      identity.Workload{Name: r.owner(e, &wait)},
		Destination: identity.Workload{Name: r.peerServer(e, &wait)},
		Port:        e.Remote.Port(),
		Reporter:    identity.Client,
		Pending:     wait,
	}
}

// Retry implements identity.Late: the ends of a pending pair that are
// guesses (unknown) are named again with what the scans brought since; a
// named end stays.
func (r *Resolver) Retry(p identity.Pair, e *event.TCP) identity.Pair {
	if !p.Pending {
		return p
	}
	q := r.Identify(e)
	if p.Source.Name != identity.Unknown {
		q.Source = p.Source
	}
	if p.Destination.Name != identity.Unknown {
		q.Destination = p.Destination
	}
	return q
}

// isServer: accepted sockets are, and so is any socket whose local port has
// a listener in its namespace (for sockets first seen by a sweep or a reset).
func (r *Resolver) isServer(e *event.TCP) bool {
	switch e.Kind {
	case event.Accept:
		return true
	case event.Connect, event.ConnectFailed:
		return false
	}
	_, ok := r.listenerAt(e.Netns, e.Local)
	return ok
}

// owner names the process owning e's socket.
func (r *Resolver) owner(e *event.TCP, wait *bool) string {
	if e.PID != 0 && e.Comm != "" {
		return e.Comm
	}
	return r.ownerOf(e.Inode, wait)
}

// ownerOf names the process holding a socket inode from the last scan.
// Where it is not there and a scan may run (one a second at most, as
// before), one is asked for and *wait set: the name may come with it.
func (r *Resolver) ownerOf(inode uint64, wait *bool) string {
	if inode == 0 {
		return identity.Unknown
	}
	if name, ok := r.owners[inode]; ok {
		return name
	}
	if !r.scanning && r.now().Sub(r.scanned) >= rescanEvery {
		r.scanned = r.now()
		r.scanning = r.stats.Ask(r.ask, Lookup{Need: Owners})
	}
	if r.scanning {
		*wait = true
	}
	return identity.Unknown
}

// peerServer names the server a client connected to.
func (r *Resolver) peerServer(e *event.TCP, wait *bool) string {
	netns, local := r.localNetns(e.Netns, e.Remote.Addr())
	if !local {
		return identity.World
	}
	return r.listenerOwner(netns, e.Remote, nil, wait)
}

// peerClient names the client of an accepted connection.
func (r *Resolver) peerClient(e *event.TCP, wait *bool) string {
	if c, ok := r.clients[key(e.Netns, e.Remote, e.Local)]; ok {
		if c.owner != "" {
			return c.owner
		}
		return r.ownerOf(c.inode, wait)
	}
	if _, local := r.localNetns(e.Netns, e.Remote.Addr()); local {
		return identity.Unknown
	}
	return identity.World
}

// listenerOwner names whoever listens on addr in netns; self, when given,
// is the accepted socket whose inode may name the owner instead.
func (r *Resolver) listenerOwner(netns uint32, addr netip.AddrPort, self *event.TCP, wait *bool) string {
	l, ok := r.listenerAt(netns, addr)
	if ok && l.owner != "" {
		return l.owner
	}
	var later bool
	if ok && l.inode != 0 {
		if name := r.ownerOf(l.inode, &later); name != identity.Unknown {
			return name
		}
	}
	if self != nil && self.Inode != 0 {
		if name := r.ownerOf(self.Inode, &later); name != identity.Unknown {
			return name
		}
	}
	*wait = *wait || later
	return identity.Unknown
}

func (r *Resolver) listenerAt(netns uint32, addr netip.AddrPort) (listener, bool) {
	var wildcard listener
	var found bool
	for _, l := range r.listeners[listenKey{netns, addr.Port()}] {
		if l.addr == addr.Addr() {
			return l, true
		}
		if l.addr.IsUnspecified() && (l.addr.Is6() || addr.Addr().Is4()) {
			wildcard, found = l, true
		}
	}
	return wildcard, found
}

func (r *Resolver) listenerOf(netns uint32, port uint16, sock uint64) (listener, bool) {
	l, ok := r.listeners[listenKey{netns, port}][sock]
	return l, ok
}

func (r *Resolver) addListener(e *event.TCP, owner string) {
	k := listenKey{e.Netns, e.Local.Port()}
	ls := r.listeners[k]
	if ls == nil {
		if len(r.listeners) >= maxListeners {
			return
		}
		ls = map[uint64]listener{}
		r.listeners[k] = ls
	}
	ls[e.Sock] = listener{addr: e.Local.Addr(), owner: owner, inode: e.Inode}
	r.listenAt[e.Sock] = k
}

// localNetns finds the namespace on this host that owns addr, if any.
func (r *Resolver) localNetns(from uint32, addr netip.Addr) (uint32, bool) {
	if addr.IsLoopback() {
		return from, true
	}
	netns, ok := r.addrs[addr]
	return netns, ok
}

// NetnsOf says which network namespace of this host has address a.
func (r *Resolver) NetnsOf(a netip.Addr) (uint32, bool) {
	netns, ok := r.addrs[a.Unmap()]
	return netns, ok
}

// Wait says whether e, and every record after it, must wait for an answer
// before the loop goes on: while a namespace seen for the first time has
// not had its addresses listed, a connection to one of them would be
// taken for the world. Wait asks for the listing when e's namespace is new.
func (r *Resolver) Wait(e *event.TCP) bool {
	if _, ok := r.listed[e.Netns]; !ok && e.Netns != 0 {
		if r.askAddrs(e.Netns, e.PID) {
			r.first[e.Netns] = true
		}
		r.findNamespaces()
	}
	return r.Waiting()
}

// findNamespaces asks for the host's namespaces: one seen for the first
// time says others may have come too, and a connection to a namespace
// with no socket of its own (no record to show it: a refused connect)
// would be taken for the world until the next sweep found it. Their
// first listings hold the loop like this one's.
func (r *Resolver) findNamespaces() {
	if !r.finding && r.stats.Ask(r.ask, Lookup{Need: Namespaces}) {
		r.finding, r.findHold = true, true
	}
}

// Waiting says whether a first listing is still to come: records of other
// kinds wait behind it too.
func (r *Resolver) Waiting() bool { return len(r.first) > 0 || r.findHold }

// Release stops waiting for the first listings asked for: the loop waited
// as long as it may. Their answers still count when they come.
func (r *Resolver) Release() {
	r.stats.Released.Add(1)
	clear(r.first)
	r.findHold = false
}

// askAddrs asks for the addresses of a namespace; one the worker cannot
// take is asked again by the next record from there.
func (r *Resolver) askAddrs(netns, pid uint32) bool {
	if len(r.listed) >= maxAddrs { // namespaces come and go: start over
		clear(r.listed)
	}
	if !r.stats.Ask(r.ask, Lookup{Need: Addrs, Netns: netns, PID: pid}) {
		delete(r.listed, netns)
		return false
	}
	r.listed[netns] = r.now()
	return true
}

// Answer folds in what the host said; the agent's loop calls it in its
// turn among the records. An answer to no question (the agent's start
// lists every namespace and scans once, before any record) is welcome too.
func (r *Resolver) Answer(a Answer) {
	r.stats.Answered[a.Need].Add(1)
	if a.Err != nil {
		r.stats.Failed[a.Need].Add(1)
	}
	switch a.Need {
	case Addrs:
		delete(r.first, a.Netns)
		if _, ok := r.listed[a.Netns]; !ok {
			r.listed[a.Netns] = r.now()
		}
		if a.Err != nil {
			// Namespaces vanish between a record and its listing; that is normal.
			r.log.Debug("cannot list namespace addresses", zap.Uint32("netns", a.Netns), zap.Error(a.Err))
			return
		}
		for _, addr := range a.Addrs {
			r.addAddr(addr, a.Netns)
		}
	case Namespaces:
		r.finding, r.findHold = false, false
		for _, ns := range a.All {
			if _, ok := r.listed[ns]; !ok && r.askAddrs(ns, 0) {
				r.first[ns] = true
			}
		}
	case Owners:
		r.scanning = false
		r.scanned = r.now()
		if a.Err == nil {
			r.owners = a.Owners
		}
	}
}

// addAddr runs for nearly every record: when its namespace's records last
// carried the same address, one lookup by namespace (an address is dearer
// to hash). lastAddr[ns] == a holds only while addrs[a] == ns.
func (r *Resolver) addAddr(a netip.Addr, netns uint32) {
	if last, ok := r.lastAddr[netns]; ok && last == a {
		return
	}
	old, ok := r.addrs[a]
	if !ok && len(r.addrs) >= maxAddrs {
		return
	}
	if ok && old != netns && r.lastAddr[old] == a {
		delete(r.lastAddr, old)
	}
	r.addrs[a] = netns
	if len(r.lastAddr) >= maxAddrs {
		clear(r.lastAddr)
	}
	r.lastAddr[netns] = a
}
