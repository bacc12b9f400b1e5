package agent

import (
	"github.com/stratanet/strata/agent/dnsflow"
	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/agent/httpflow"
	"github.com/stratanet/strata/identity/process"
	"github.com/stratanet/strata/probes/event"
)

// stages are what the event loop hands records to, in the kernel's order.
type stages struct {
	resolver *process.Resolver
	table    *flow.Table
	requests *httpflow.Table
	queries  *dnsflow.Table // nil when DNS is off
}

// apply takes a run of records. Consecutive TCP records go to the flow
// table in one call (one hold of its lock; a lock per record was a tenth
// of the loop's time in a storm), the resolver seeing each just before.
// HTTP learns of the run's closes right after it, before any later record
// of another kind: naming a closed socket's request finds the socket by
// its tombstone, which outlives any run (a run is at most a batch).
func (s *stages) apply(rs []event.Record) {
	for len(rs) > 0 {
		r := &rs[0]
		switch {
		case r.Tally != nil:
			s.requests.Tally(r.Tally)
		case r.HTTP != nil:
			s.requests.Apply(r.HTTP)
		case r.DNS != nil:
			if s.queries != nil {
				s.queries.Apply(r.DNS)
			}
		default:
			n := 1
			for n < len(rs) && rs[n].IsTCP() {
				n++
			}
			s.table.ApplyAll(rs[:n], s.resolver.Observe)
			for i := range n {
				if e := &rs[i].TCP; e.Kind == event.Close {
					s.requests.Closed(e.Sock, e.Mono)
				}
			}
			rs = rs[n:]
			continue
		}
		rs = rs[1:]
	}
}
