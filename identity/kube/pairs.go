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
	// Process names the pod a process of the node's network namespace
	// belongs to (a host-network pod, by its cgroup); nil or not found:
	// the end is the node itself, HostName.
	Process func(pid uint32) (Entry, bool)
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
	if en, ok := p.Dir.Lookup(client.Addr(), at); ok {
		pair.Source = identity.Workload{Namespace: en.Namespace, Name: en.Workload}
	} else if p.mayBePod(client.Addr(), pair.Source.Name, clientLocal, e) {
		pair.Pending = true
	} else if clientLocal && p.onHost(client.Addr(), e) {
		en := p.node(e.PID)
		pair.Source = identity.Workload{Namespace: en.Namespace, Name: en.Workload}
	}
	if en, ok := p.Dir.Lookup(server.Addr(), at); ok {
		pair.Destination = identity.Workload{Namespace: en.Namespace, Name: en.Workload, Service: en.Service}
	} else if p.mayBePod(server.Addr(), pair.Destination.Name, !clientLocal, e) {
		pair.Pending = true
	} else if !clientLocal && p.onHost(server.Addr(), e) {
		en := p.node(e.PID)
		pair.Destination = identity.Workload{Namespace: en.Namespace, Name: en.Workload}
	}
	return pair
}

// onHost: this end is a socket of the node's own network namespace
// (loopback stays with the host resolver's process names).
func (p Pairs) onHost(a netip.Addr, e *event.TCP) bool {
	return e.Netns == p.HostNetns && !a.IsLoopback()
}

// node names a process of the node's namespace.
func (p Pairs) node(pid uint32) Entry {
	if pid != 0 && p.Process != nil {
		if en, ok := p.Process(pid); ok {
			return en
		}
	}
	return Entry{Workload: HostName}
}

// mayBePod says whether an address the cluster does not know may still
// turn out to be a pod's.
func (p Pairs) mayBePod(a netip.Addr, hostName string, local bool, e *event.TCP) bool {
	if a.IsLoopback() {
		return false
	}
	if local {
		return e.Netns != p.HostNetns
	}
	return hostName == identity.World && a.IsPrivate()
}
