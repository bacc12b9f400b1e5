package kube

import (
	"net/netip"
	"time"

	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

// Entry is what an address means in the cluster.
type Entry struct {
	Namespace string
	Workload  string // Deployment, StatefulSet, DaemonSet, CronJob or Job name; the pod's own otherwise
	Service   string // the Service the address is, or whose endpoints include it
}

// Directory answers for pod addresses and Service ClusterIPs, as they
// were at a given time.
type Directory interface {
	Lookup(ip netip.Addr, at time.Time) (Entry, bool)
}

// Pairs names both ends of a connection with Kubernetes identities where
// the cluster knows the address, and leaves the rest to the host's own
// resolver: processes on the node, world outside.
//
// A pod's first connections often beat its address to the agent: the
// kubelet reports the address after the containers start. So an end the
// cluster does not know yet is Pending when it may be a pod: a socket in
// a namespace other than the host's, or a peer at a private address the
// host does not own. The flow table asks again (Retry) before it counts.
type Pairs struct {
	Host      identity.Identifier
	Dir       Directory
	HostNetns uint32 // the node's own network namespace
	// Process names the pod a process belongs to, by its cgroup: a
	// host-network pod (else the end is the node itself, HostName), or a
	// pod whose address the API server has not reported yet. wait: the
	// process's cgroup is being read (off the event loop); the pair is
	// Pending and named again once it is in.
	Process func(pid uint32) (en Entry, ok, wait bool)
	// NetnsOf says which network namespace of this host has an address
	// (nil: none known). A peer in the node's own is HostName; one in
	// another namespace of the node that is no known pod may be a pod not
	// reported yet, and is otherwise outside the cluster (world).
	NetnsOf func(netip.Addr) (uint32, bool)
	// Clock turns the kernel's monotonic event time into wall time, so a
	// connection named late is named as of when it started; nil: now.
	Clock func(mono uint64) time.Time
}

// HostName names an end in the node's own network namespace that is no
// pod's: kubelet, sshd, a node daemon.
const HostName = "host"

func (p Pairs) Observe(e *event.TCP) { p.Host.Observe(e) }
func (p Pairs) Forget(sock uint64)   { p.Host.Forget(sock) }

func (p Pairs) Identify(e *event.TCP) identity.Pair {
	pair := p.Host.Identify(e)
	pair.Pending = true // every end is looked up below
	return p.Retry(pair, e)
}

// Retry implements identity.Late. A pair that was not pending is returned
// as it is: once named, a connection keeps its name even if an address is
// reused later.
func (p Pairs) Retry(pair identity.Pair, e *event.TCP) identity.Pair {
	if !pair.Pending {
		return pair
	}
	client, server := e.Local, e.Remote
	clientLocal := true
	if pair.Reporter == identity.Server {
		client, server = server, client
		clientLocal = false
	}
	pair.Pending = false
	at := time.Now()
	if p.Clock != nil && e.Mono != 0 {
		at = p.Clock(e.Mono)
	}
	// A loopback end is the host resolver's to name; one it could not name
	// yet (its owner's scan still to come) is asked again.
	var host *identity.Pair
	again := func(w identity.Workload, a netip.Addr, src bool) identity.Workload {
		if w.Name != identity.Unknown || !a.IsLoopback() {
			return w
		}
		if host == nil {
			h := p.Host.Identify(e)
			host = &h
		}
		if src {
			return host.Source
		}
		return host.Destination
	}
	if en, ok := p.Dir.Lookup(client.Addr(), at); ok {
		pair.Source = identity.Workload{Namespace: en.Namespace, Name: en.Workload}
	} else {
		pair.Source = p.unknown(client.Addr(), again(pair.Source, client.Addr(), true), clientLocal, e, &pair.Pending)
	}
	if en, ok := p.Dir.Lookup(server.Addr(), at); ok {
		pair.Destination = identity.Workload{Namespace: en.Namespace, Name: en.Workload, Service: en.Service}
	} else {
		pair.Destination = p.unknown(server.Addr(), again(pair.Destination, server.Addr(), false), !clientLocal, e, &pair.Pending)
	}
	return pair
}

// unknown names an end the cluster does not know (yet): w is what the
// host resolver called it, local whether it is the observed socket's end.
func (p Pairs) unknown(a netip.Addr, w identity.Workload, local bool, e *event.TCP, pending *bool) identity.Workload {
	if a.IsLoopback() { // a process talking to itself or a neighbour in its namespace
		if w.Name == identity.Unknown {
			*pending = true // its owner's scan may name it yet
		}
		return w
	}
	netns, onNode := e.Netns, local
	if !local && p.NetnsOf != nil {
		netns, onNode = p.NetnsOf(a)
	}
	switch {
	case onNode && netns == p.HostNetns:
		pid := uint32(0)
		if local {
			pid = e.PID
		}
		en := p.node(pid, pending)
		return identity.Workload{Namespace: en.Namespace, Name: en.Workload}
	case onNode: // another namespace of the node: a pod not reported yet, or no pod
		if local {
			// Its process's cgroup names the pod before its address is
			// reported (and for sockets without an address of their own).
			if en, ok := p.pod(e.PID, pending); ok {
				return identity.Workload{Namespace: en.Namespace, Name: en.Workload}
			}
		}
		*pending = true
		if !local {
			return identity.Workload{Name: identity.World}
		}
	case w.Name == identity.World && a.IsPrivate(): // maybe a pod of another node
		*pending = true
	}
	return w
}

// node names a process of the node's namespace: the node itself until its
// cgroup says otherwise (meanwhile *pending, when it is being read).
func (p Pairs) node(pid uint32, pending *bool) Entry {
	if en, ok := p.pod(pid, pending); ok {
		return en
	}
	return Entry{Workload: HostName}
}

// pod names the pod of a process by its cgroup (pid 0: not known); it sets
// *pending while the cgroup is being read.
func (p Pairs) pod(pid uint32, pending *bool) (Entry, bool) {
	if pid == 0 || p.Process == nil {
		return Entry{}, false
	}
	en, ok, wait := p.Process(pid)
	if wait {
		*pending = true
	}
	return en, ok
}
