// Package process is standalone identity: each end of a connection on this
// host is named after the process that owns its socket; anything else is
// the world. Only the agent's event loop calls it, so it holds no locks.
package process

import (
	"net/netip"
	"time"

	"go.uber.org/zap"

	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

// Host answers what the event stream cannot: the addresses of a network
// namespace and the owner of a socket inode (both from /proc on Linux).
type Host interface {
	// NetnsAddrs lists the addresses of namespace netns; pid, when not
	// zero, is a process known to live in it.
	NetnsAddrs(netns, pid uint32) ([]netip.Addr, error)
	// SocketOwner names the process holding the socket with this inode.
	SocketOwner(inode uint64) (string, bool)
}

// Limits bound the resolver's memory whatever the traffic.
const (
	maxClients   = 1 << 20
	maxListeners = 1 << 16
	maxAddrs     = 1 << 16
)

// How often a namespace's addresses are listed again.
const refreshAddrs = 30 * time.Second

type listener struct {
	addr  netip.Addr // unspecified for a wildcard listener
	owner string
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
	log  *zap.Logger
	host Host
	now  func() time.Time

	listeners map[listenKey]map[uint64]listener // by socket
	listenAt  map[uint64]listenKey              // listening socket -> its key
	clients   map[tuple]string                  // live client sockets -> owner
	clientOf  map[uint64]tuple
	addrs     map[netip.Addr]uint32 // local address -> namespace
	listed    map[uint32]time.Time  // namespaces whose addresses were listed
}

var _ identity.Identifier = (*Resolver)(nil)

func New(log *zap.Logger, host Host) *Resolver {
	return &Resolver{
		log:       log,
		host:      host,
		now:       time.Now,
		listeners: map[listenKey]map[uint64]listener{},
		listenAt:  map[uint64]listenKey{},
		clients:   map[tuple]string{},
		clientOf:  map[uint64]tuple{},
		addrs:     map[netip.Addr]uint32{},
		listed:    map[uint32]time.Time{},
	}
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
		if last, ok := r.listed[e.Netns]; ok && r.now().Sub(last) > refreshAddrs {
			r.listNetns(e.Netns, 0)
		}
		return
	}
	r.learnNetns(e)
	switch e.Kind {
	case event.Listen:
		r.addListener(e, e.Comm)
	case event.ListenClose:
		r.Forget(e.Sock)
	case event.Snapshot:
		if e.State == event.StateListen {
			if _, ok := r.listenerOf(e.Netns, e.Local.Port(), e.Sock); !ok {
				owner, _ := r.host.SocketOwner(e.Inode)
				r.addListener(e, owner)
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
		r.clients[t] = r.owner(e)
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

// Identify implements identity.Identifier.
func (r *Resolver) Identify(e *event.TCP) identity.Pair {
	if r.isServer(e) {
		return identity.Pair{
			Source:      identity.Workload{Name: r.peerClient(e)},
			Destination: identity.Workload{Name: r.listenerOwner(e.Netns, e.Local, e)},
			Port:        e.Local.Port(),
			Reporter:    identity.Server,
		}
	}
	return identity.Pair{
		Source:      identity.Workload{Name: r.owner(e)},
		Destination: identity.Workload{Name: r.peerServer(e)},
		Port:        e.Remote.Port(),
		Reporter:    identity.Client,
	}
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
func (r *Resolver) owner(e *event.TCP) string {
	if e.PID != 0 && e.Comm != "" {
		return e.Comm
	}
	if name, ok := r.host.SocketOwner(e.Inode); ok {
		return name
	}
	return identity.Unknown
}

// peerServer names the server a client connected to.
func (r *Resolver) peerServer(e *event.TCP) string {
	netns, local := r.localNetns(e.Netns, e.Remote.Addr())
	if !local {
		return identity.World
	}
	return r.listenerOwner(netns, e.Remote, nil)
}

// peerClient names the client of an accepted connection.
func (r *Resolver) peerClient(e *event.TCP) string {
	if owner, ok := r.clients[key(e.Netns, e.Remote, e.Local)]; ok {
		return owner
	}
	if _, local := r.localNetns(e.Netns, e.Remote.Addr()); local {
		return identity.Unknown
	}
	return identity.World
}

// listenerOwner names whoever listens on addr in netns; self, when given,
// is the accepted socket whose inode may name the owner instead.
func (r *Resolver) listenerOwner(netns uint32, addr netip.AddrPort, self *event.TCP) string {
	if l, ok := r.listenerAt(netns, addr); ok && l.owner != "" {
		return l.owner
	}
	if self != nil {
		if name, ok := r.host.SocketOwner(self.Inode); ok {
			return name
		}
	}
	return identity.Unknown
}

func (r *Resolver) listenerAt(netns uint32, addr netip.AddrPort) (listener, bool) {
	var wildcard *listener
	for _, l := range r.listeners[listenKey{netns, addr.Port()}] {
		if l.addr == addr.Addr() {
			return l, true
		}
		if l.addr.IsUnspecified() && (l.addr.Is6() || addr.Addr().Is4()) {
			wildcard = &l
		}
	}
	if wildcard != nil {
		return *wildcard, true
	}
	return listener{}, false
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
	ls[e.Sock] = listener{addr: e.Local.Addr(), owner: owner}
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

// learnNetns records which namespace owns which address: from the socket's
// own local address, and by listing a namespace's addresses the first time
// it shows up (and again at its sweeps, now and then), so that a connection
// to a namespace on this host resolves even before its server accepts.
func (r *Resolver) learnNetns(e *event.TCP) {
	if a := e.Local.Addr(); a.IsValid() && !a.IsUnspecified() && !a.IsLoopback() {
		r.addAddr(a, e.Netns)
	}
	if _, ok := r.listed[e.Netns]; !ok && e.Netns != 0 {
		r.listNetns(e.Netns, e.PID)
	}
}

// Learn lists a namespace's addresses unless they are known: the agent
// calls it for every namespace at start, before any event.
func (r *Resolver) Learn(netns uint32) {
	if _, ok := r.listed[netns]; !ok {
		r.listNetns(netns, 0)
	}
}

func (r *Resolver) listNetns(netns, pid uint32) {
	if len(r.listed) >= maxAddrs { // namespaces come and go: start over
		clear(r.listed)
	}
	r.listed[netns] = r.now()
	addrs, err := r.host.NetnsAddrs(netns, pid)
	if err != nil {
		r.log.Debug("cannot list namespace addresses", zap.Uint32("netns", netns), zap.Error(err))
		return
	}
	for _, a := range addrs {
		r.addAddr(a, netns)
	}
}

func (r *Resolver) addAddr(a netip.Addr, netns uint32) {
	if _, ok := r.addrs[a]; ok || len(r.addrs) < maxAddrs {
		r.addrs[a] = netns
	}
}
