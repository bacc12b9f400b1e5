package kube

import (
	"net/netip"

	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

// Entry is what an address means in the cluster.
type Entry struct {
	Namespace string
	Workload  string // Deployment, StatefulSet, DaemonSet, CronJob or Job name; the pod's own otherwise
	Service   string // the Service the address is, or whose endpoints include it
}

// Directory answers for pod addresses and Service ClusterIPs.
type Directory interface {
	Lookup(netip.Addr) (Entry, bool)
}

// Pairs names both ends of a connection with Kubernetes identities where
// the cluster knows the address, and leaves the rest to the host's own
// resolver: processes on the node, world outside.
type Pairs struct {
	Host identity.Identifier
	Dir  Directory
}

func (p Pairs) Observe(e *event.TCP) { p.Host.Observe(e) }
func (p Pairs) Forget(sock uint64)   { p.Host.Forget(sock) }

func (p Pairs) Identify(e *event.TCP) identity.Pair {
	pair := p.Host.Identify(e)
	client, server := e.Local, e.Remote
	if pair.Reporter == identity.Server {
		client, server = server, client
	}
	if en, ok := p.Dir.Lookup(client.Addr()); ok {
		pair.Source = identity.Workload{Namespace: en.Namespace, Name: en.Workload}
	}
	if en, ok := p.Dir.Lookup(server.Addr()); ok {
		pair.Destination = identity.Workload{Namespace: en.Namespace, Name: en.Workload, Service: en.Service}
	}
	return pair
}
