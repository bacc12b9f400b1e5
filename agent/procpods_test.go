package agent

import (
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/stratanet/strata/identity"
	"github.com/stratanet/strata/identity/kube"
	"github.com/stratanet/strata/identity/process"
	"github.com/stratanet/strata/probes/event"
)

// queue takes lookups for the test to answer, or refuses them all.
type queue struct {
	asked  []process.Lookup
	refuse bool
}

func (q *queue) Ask(l process.Lookup) bool {
	if q.refuse {
		return false
	}
	q.asked = append(q.asked, l)
	return true
}

const agentCgroup = "0::/kubepods/burstable/pod3f8b1c2a-9d4e-4f6a-8b7c-1d2e3f4a5b6c/abc\n"

func testPods(q *queue, now *time.Time) *procPods {
	return &procPods{
		byCgroup: func(b []byte) (kube.Entry, bool) {
			if string(b) == agentCgroup {
				return kube.Entry{Namespace: "kube-system", Workload: "agent"}, true
			}
			return kube.Entry{}, false
		},
		ask: q, stats: &process.Stats{}, now: func() time.Time { return *now },
		seen: map[uint32]procPod{}, reading: map[uint32]bool{},
	}
}

// A process's cgroup is read by the worker, never on the loop: the first
// question waits for it (asked once however often it is put), the answer
// names it for procFresh, after which the old answer names it while the
// file is read again.
func TestProcPodsAskTheWorker(t *testing.T) {
	now := time.Unix(1000, 0)
	q := &queue{}
	p := testPods(q, &now)
	for range 3 {
		if en, ok, wait := p.pod(42); ok || !wait || en != (kube.Entry{}) {
			t.Fatalf("before the answer: %+v %v %v, want nothing yet and wait", en, ok, wait)
		}
	}
	if want := []process.Lookup{{Need: process.Cgroup, PID: 42}}; !slices.Equal(q.asked, want) {
		t.Fatalf("asked %v, want %v", q.asked, want)
	}
	p.answer(process.Answer{Lookup: q.asked[0], Cgroup: []byte(agentCgroup)})
	q.asked = nil
	now = now.Add(procFresh - time.Millisecond)
	if en, ok, wait := p.pod(42); !ok || wait || en.Workload != "agent" || en.Namespace != "kube-system" {
		t.Fatalf("after the answer: %+v %v %v", en, ok, wait)
	}
	if len(q.asked) != 0 {
		t.Fatalf("asked again within %s: %v", procFresh, q.asked)
	}
	now = now.Add(time.Millisecond)
	if en, ok, wait := p.pod(42); !ok || wait || en.Workload != "agent" {
		t.Fatalf("stale: %+v %v %v, want the old answer without waiting", en, ok, wait)
	}
	if len(q.asked) != 1 {
		t.Fatalf("a stale answer asked %d times, want once", len(q.asked))
	}
	// The process is gone by the second read: no pod (the node's own).
	p.answer(process.Answer{Lookup: q.asked[0], Err: errors.New("no such file")})
	if _, ok, wait := p.pod(42); ok || wait {
		t.Fatalf("after a failed read: ok %v wait %v", ok, wait)
	}
	if got := p.stats.Asked[process.Cgroup].Load(); got != 2 {
		t.Errorf("asked counter %d, want 2", got)
	}
}

// A worker that refuses (its queue full) leaves the process named with what
// is known, counted, and nothing waiting for an answer that will not come.
func TestProcPodsRefused(t *testing.T) {
	now := time.Unix(1000, 0)
	p := testPods(&queue{refuse: true}, &now)
	if _, ok, wait := p.pod(42); ok || wait {
		t.Fatalf("refused: ok %v wait %v", ok, wait)
	}
	if got := p.stats.Dropped[process.Cgroup].Load(); got != 1 {
		t.Errorf("dropped %d, want 1", got)
	}
}

// Through kube.Pairs, as the agent wires it: a host-network process's
// connection is the node's and pending until its cgroup is in, then its
// pod's when named again.
func TestProcPodsNameAHostNetworkPodLate(t *testing.T) {
	now := time.Unix(1000, 0)
	q := &queue{}
	p := testPods(q, &now)
	pod := netip.MustParseAddr("10.244.0.5")
	pairs := kube.Pairs{Host: comm{}, Dir: oneAddr{pod}, HostNetns: 1, Process: p.pod}
	e := &event.TCP{Kind: event.Connect, Netns: 1, PID: 42, Comm: "agent",
		Local: netip.MustParseAddrPort("192.168.1.4:40000"), Remote: netip.AddrPortFrom(pod, 80)}
	first := pairs.Identify(e)
	if !first.Pending || first.Source != (identity.Workload{Name: kube.HostName}) {
		t.Fatalf("first: %+v pending %v, want the node, pending", first.Source, first.Pending)
	}
	p.answer(process.Answer{Lookup: q.asked[0], Cgroup: []byte(agentCgroup)})
	again := pairs.Retry(first, e)
	if again.Pending || again.Source != (identity.Workload{Namespace: "kube-system", Name: "agent"}) {
		t.Fatalf("named again: %+v pending %v", again.Source, again.Pending)
	}
}

// comm names the local end by its process, the far end the world.
type comm struct{}

func (comm) Observe(*event.TCP) {}
func (comm) Forget(uint64)      {}
func (comm) Identify(e *event.TCP) identity.Pair {
	return identity.Pair{Source: identity.Workload{Name: e.Comm}, Destination: identity.Workload{Name: identity.World},
		Port: e.Remote.Port(), Reporter: identity.Client}
}

// oneAddr knows one pod address.
type oneAddr struct{ a netip.Addr }

func (d oneAddr) Lookup(a netip.Addr, _ time.Time) (kube.Entry, bool) {
	return kube.Entry{Namespace: "shop", Workload: "frontend"}, a == d.a
}
