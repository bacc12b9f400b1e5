// Package identity names the two ends of a connection. Resolvers learn from
// the event stream (who listens where, who connected from where) and answer
// for each new connection who talked to whom.
package identity

import "github.com/stratanet/strata/probes/event"

// Reporter says which end of a connection this agent observed.
type Reporter string

const (
	Client Reporter = "client"
	Server Reporter = "server"
)

// Names for ends that are not a known workload.
const (
	World   = "world"   // an address outside this host (or cluster)
	Unknown = "unknown" // on this host, but no process owns it (nothing listening, or it is gone)
)

// Workload is one end of a connection.
type Workload struct {
	Namespace string // Kubernetes namespace; "" outside Kubernetes
	Name      string // workload, process name, DNS name or World
	Service   string // Kubernetes Service, destinations only
}

// Pair is who talked to whom, the key every per-connection series shares.
type Pair struct {
	Source      Workload
	Destination Workload
	Port        uint16 // the server's port
	Reporter    Reporter
	// Pending: an end is an address its resolver may learn soon (a pod
	// whose address the API server has not announced yet). A Late resolver
	// names it again; until then the pair is a guess.
	Pending bool
}

// Identifier is where the probes' events meet identity.
type Identifier interface {
	// Observe learns from every event, in the order the kernel produced them.
	Observe(e *event.TCP)
	// Identify names the ends of the connection behind e.
	Identify(e *event.TCP) Pair
	// Forget drops what is known about a socket the agent gave up on.
	Forget(sock uint64)
}

// Late is an Identifier whose Pending pairs may be named again.
type Late interface {
	// Retry names again the ends of p (an earlier answer for e) that were
	// pending; what was named stays.
	Retry(p Pair, e *event.TCP) Pair
}
