package httpflow

import (
	"strconv"
	"testing"

	"go.uber.org/zap"

	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/probes/event"
)

// fixed names every connection the same, as a standalone host names a
// server it knows.
type fixed struct{}

func (fixed) Observe(*event.TCP) {}
func (fixed) Forget(uint64)      {}
func (fixed) Identify(e *event.TCP) identity.Pair {
	return identity.Pair{Source: identity.Workload{Name: "wrk"}, Destination: identity.Workload{Name: "nginx"},
		Port: 8080, Reporter: identity.Server}
}

// BenchmarkPaired is the agent's share of a keep-alive request at a busy
// server: one exchange paired in the kernel, named through the flow table.
func BenchmarkPaired(b *testing.B) {
	tb := New(flow.NewTable(zap.NewNop(), fixed{}, flow.DefaultOptions()), nil, nil, wall, "", DefaultOptions())
	evs := make([]*event.HTTP, 32)
	for i := range evs {
		evs[i] = paired(uint64(i+1), 0, 1e6, "GET /api/users/"+strconv.Itoa(i)+" HTTP/1.1\r\nHost: 10.0.0.2\r\n\r\n", 200)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		tb.Apply(evs[i%len(evs)])
	}
}
