package kube

import (
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"
	"unique"

	"k8s.io/apimachinery/pkg/types"
)

// Everything below runs under Cache.mu: writes from the informers'
// handlers, reads from the lookups.

// nsName is a name within a namespace: a workload or a Service, as the
// series' labels carry them (without the kind).
type nsName struct{ ns, name string }

// ref is a controller owner reference; the zero ref is "no controller".
type ref struct {
	kind, name string
	uid        types.UID
}

// pod, service, slice and parent are the records the informers' stores
// hold (see slim.go); the handlers hand them to the state, which indexes
// the same pointers.
type pod struct {
	meta
	origin      unique.Handle[origin]
	ips         []netip.Addr
	hostNetwork bool
	terminal    bool      // Succeeded or Failed: its sandbox, and so its IP, is gone
	ended       time.Time // when the Cache first saw it terminal
	created     time.Time
	counted     nsName // the workload live counts this pod under
}

// holdsIPs: a host-network pod's IP is its node's. A finished pod's IP is
// free for the next pod, but it still names what happened before it
// ended (see podAt).
func (p *pod) holdsIPs() bool { return !p.hostNetwork }

// endedSlack is how long after a pod was seen to finish its IP still names
// it: a Job's pod often connects and ends before the API server reports
// its IP, and its connections are named after the fact.
const endedSlack = time.Second

type service struct {
	meta
	ips []netip.Addr // ClusterIPs
}

type slice struct {
	meta
	svc string // the kubernetes.io/service-name label
	eps []endpoint
}

// parent is a ReplicaSet or a Job: what matters is its controller.
type parent struct {
	meta
	owner ref
}

type endpoint struct {
	addr netip.Addr
	pod  bool // the endpoint's targetRef is a Pod
}

// member says that an address is in an EndpointSlice of a Service (whose
// record names the namespace and Service).
type member struct {
	slice *slice
	pod   bool
}

// goneKeep is how long Gone remembers a workload that is gone.
const goneKeep = time.Hour

type state struct {
	now func() time.Time

	pods    map[types.UID]*pod
	podIPs  map[netip.Addr][]types.UID // pods claiming each IP, usually one
	parents map[types.UID]ref          // ReplicaSet or Job -> its controller

	svcs      map[types.UID]*service
	vips      map[netip.Addr]types.UID
	slices    map[types.UID]*slice
	members   map[netip.Addr][]member
	svcSlices map[nsName][]types.UID

	live  map[nsName]int // pods and Services by name
	gone  map[nsName]time.Time
	swept time.Time

	// gen counts writes; memo keeps each ClusterIP's backends as of a gen,
	// so that a busy Service costs one scan of its endpoints per change
	// of the cluster rather than one per connection. Lookups fill it
	// under the read lock, hence its own mutex.
	gen    uint64
	memoMu sync.Mutex
	memo   map[types.UID]backend
}

type backend struct {
	gen        uint64
	name, kind string
}

func newState(now func() time.Time) state {
	return state{
		now:       now,
		pods:      map[types.UID]*pod{},
		podIPs:    map[netip.Addr][]types.UID{},
		parents:   map[types.UID]ref{},
		svcs:      map[types.UID]*service{},
		vips:      map[netip.Addr]types.UID{},
		slices:    map[types.UID]*slice{},
		members:   map[netip.Addr][]member{},
		svcSlices: map[nsName][]types.UID{},
		live:      map[nsName]int{},
		gone:      map[nsName]time.Time{},
		memo:      map[types.UID]backend{},
	}
}

// Pod IPs. Each pod claims its IPs and gives back exactly its own claims
// when it changes or goes, so the order in which the informer reports an
// old pod's delete and a new pod's add of the same IP does not matter. If
// two live pods claim one IP at once (the old one's last update came late),
// the newer pod wins: an IP is only handed out again once the old sandbox
// is gone.

func (s *state) upsertPod(p *pod) {
	s.gen++
	old := s.pods[p.uid]
	if old != nil {
		s.release(old)
	}
	if p.terminal {
		if p.ended = s.now(); old != nil && old.terminal {
			p.ended = old.ended
		}
	}
	s.pods[p.uid] = p
	if p.holdsIPs() {
		for _, ip := range p.ips {
			s.podIPs[ip] = append(s.podIPs[ip], p.uid)
		}
	}
	// Count the pod under its workload, which may have changed since the
	// last update if its ReplicaSet or Job arrived in between.
	p.counted = nsName{p.ns, s.podWorkload(p).Name}
	if old == nil || old.counted != p.counted {
		s.count(p.counted)
		if old != nil {
			s.uncount(old.counted)
		}
	}
}

func (s *state) removePod(uid types.UID) {
	p, ok := s.pods[uid]
	if !ok {
		return
	}
	s.gen++
	s.release(p)
	s.uncount(p.counted)
	delete(s.pods, uid)
}

func (s *state) release(p *pod) {
	for _, ip := range p.ips {
		left := slices.DeleteFunc(s.podIPs[ip], func(u types.UID) bool { return u == p.uid })
		if len(left) == 0 {
			delete(s.podIPs, ip)
		} else {
			s.podIPs[ip] = left
		}
	}
}

// podAt is the pod holding ip at time at (zero: now): the newest live
// claimant, or a finished one if at is before it ended (plus endedSlack);
// among pods created in the same second, the one reported last.
func (s *state) podAt(ip netip.Addr, at time.Time) *pod {
	var best *pod
	for _, uid := range s.podIPs[ip] {
		p := s.pods[uid]
		if p.terminal && (at.IsZero() || at.After(p.ended.Add(endedSlack))) {
			continue
		}
		if best == nil || !best.created.After(p.created) {
			best = p
		}
	}
	return best
}

// podWorkload names a pod after its controller: through a ReplicaSet to
// its Deployment, through a Job to its CronJob; StatefulSets, DaemonSets
// and other controllers directly. A pod without one is its own workload,
// and so is the mirror pod of a static pod (owned by its Node).
func (s *state) podWorkload(p *pod) Workload {
	o := p.origin.Value()
	w := Workload{Namespace: p.ns, Pod: p.name, Name: o.owner.name, Kind: o.owner.kind}
	switch o.owner.kind {
	case "", "Node":
		w.Name, w.Kind = p.name, KindPod
	case "ReplicaSet", "Job":
		if parent, ok := s.parents[o.owner.uid]; ok {
			if parent.kind != "" {
				w.Name, w.Kind = parent.name, parent.kind
			}
		} else if suffix := "-" + o.hash; o.owner.kind == "ReplicaSet" && o.hash != "" && strings.HasSuffix(o.owner.name, suffix) {
			// The ReplicaSet is not known (yet, or any more): the
			// Deployment controller names it <deployment>-<pod-template-hash>.
			w.Name, w.Kind = strings.TrimSuffix(o.owner.name, suffix), "Deployment"
		}
	}
	return w
}

// ReplicaSets and Jobs.

func (s *state) putParent(uid types.UID, r ref) {
	s.gen++
	s.parents[uid] = r
}

func (s *state) dropParent(uid types.UID) {
	s.gen++
	delete(s.parents, uid)
}

// Services.

func (s *state) upsertService(sv *service) {
	s.gen++
	if old, ok := s.svcs[sv.uid]; ok {
		s.releaseVIPs(old)
	} else {
		s.count(nsName{sv.ns, sv.name})
	}
	s.svcs[sv.uid] = sv
	for _, ip := range sv.ips {
		s.vips[ip] = sv.uid
	}
}

func (s *state) removeService(uid types.UID) {
	sv, ok := s.svcs[uid]
	if !ok {
		return
	}
	s.gen++
	s.releaseVIPs(sv)
	s.uncount(nsName{sv.ns, sv.name})
	delete(s.svcs, uid)
	s.memoMu.Lock()
	delete(s.memo, uid)
	s.memoMu.Unlock()
}

// releaseVIPs drops the service's ClusterIPs unless a newer Service has
// taken them already.
func (s *state) releaseVIPs(sv *service) {
	for _, ip := range sv.ips {
		if s.vips[ip] == sv.uid {
			delete(s.vips, ip)
		}
	}
}

// EndpointSlices.

func (s *state) upsertSlice(sl *slice) {
	s.gen++
	s.removeSlice(sl.uid)
	if sl.svc == "" {
		return // not a Service's slice
	}
	s.slices[sl.uid] = sl
	for _, e := range sl.eps {
		s.members[e.addr] = append(s.members[e.addr], member{sl, e.pod})
	}
	k := nsName{sl.ns, sl.svc}
	s.svcSlices[k] = append(s.svcSlices[k], sl.uid)
}

func (s *state) removeSlice(uid types.UID) {
	sl, ok := s.slices[uid]
	if !ok {
		return
	}
	s.gen++
	for _, e := range sl.eps {
		left := slices.DeleteFunc(s.members[e.addr], func(m member) bool { return m.slice == sl })
		if len(left) == 0 {
			delete(s.members, e.addr)
		} else {
			s.members[e.addr] = left
		}
	}
	k := nsName{sl.ns, sl.svc}
	if left := slices.DeleteFunc(s.svcSlices[k], func(u types.UID) bool { return u == uid }); len(left) == 0 {
		delete(s.svcSlices, k)
	} else {
		s.svcSlices[k] = left
	}
	delete(s.slices, uid)
}

// serviceOf picks, among the Services whose slices hold ip and that match,
// the first by namespace then name, so that a pod behind several Services
// is always named after the same one.
func (s *state) serviceOf(ip netip.Addr, match func(member) bool) (ns, svc string, ok bool) {
	for _, m := range s.members[ip] {
		if match(m) && (!ok || m.slice.ns < ns || m.slice.ns == ns && m.slice.svc < svc) {
			ns, svc, ok = m.slice.ns, m.slice.svc, true
		}
	}
	return ns, svc, ok
}

// backends names the workload behind a Service's ClusterIP when all its
// endpoints that are known pods belong to one workload (the usual case), so
// that a client's view of a call (to the ClusterIP) and the server's (at its
// pod IP) carry the same destination; else the Service names itself.
func (s *state) backends(sv *service) (name, kind string) {
	s.memoMu.Lock()
	b, ok := s.memo[sv.uid]
	s.memoMu.Unlock()
	if ok && b.gen == s.gen {
		return b.name, b.kind
	}
	name, kind = s.scanBackends(sv)
	s.memoMu.Lock()
	s.memo[sv.uid] = backend{s.gen, name, kind}
	s.memoMu.Unlock()
	return name, kind
}

// scanBackends costs one lookup per endpoint.
func (s *state) scanBackends(sv *service) (name, kind string) {
	name, kind = sv.name, KindService
	found := false
	for _, uid := range s.svcSlices[nsName{sv.ns, sv.name}] {
		for _, e := range s.slices[uid].eps {
			p := s.podAt(e.addr, time.Time{})
			if p == nil || p.ns != sv.ns {
				continue
			}
			w := s.podWorkload(p)
			if found && (w.Name != name || w.Kind != kind) {
				return sv.name, KindService
			}
			name, kind, found = w.Name, w.Kind, true
		}
	}
	return name, kind
}

// byIP answers ByIP: a pod (with the Service whose slices hold it), else a
// ClusterIP, else an endpoint of a Service that is no pod (a Service
// without selector pointing at addresses of its own).
func (s *state) byIP(ip netip.Addr, at time.Time) (Workload, bool) {
	if p := s.podAt(ip, at); p != nil {
		w := s.podWorkload(p)
		_, w.Service, _ = s.serviceOf(ip, func(m member) bool { return m.slice.ns == p.ns })
		return w, true
	}
	if uid, ok := s.vips[ip]; ok {
		sv := s.svcs[uid]
		w := Workload{Namespace: sv.ns, Service: sv.name}
		w.Name, w.Kind = s.backends(sv)
		return w, true
	}
	// A Pod target not found above is a host-network pod (the node's IP)
	// or a pod not reported yet: neither is the Service's to name.
	if ns, svc, ok := s.serviceOf(ip, func(m member) bool { return !m.pod }); ok {
		return Workload{Namespace: ns, Name: svc, Kind: KindService, Service: svc}, true
	}
	return Workload{}, false
}

// Liveness of names, for Gone.

func (s *state) count(k nsName) {
	if s.live[k]++; s.live[k] == 1 {
		delete(s.gone, k)
	}
}

func (s *state) uncount(k nsName) {
	if s.live[k]--; s.live[k] > 0 {
		return
	}
	delete(s.live, k)
	now := s.now()
	s.gone[k] = now
	if now.Sub(s.swept) > goneKeep/4 {
		s.swept = now
		for k, t := range s.gone {
			if now.Sub(t) > goneKeep {
				delete(s.gone, k)
			}
		}
	}
}

func (s *state) goneSince(k nsName) (time.Time, bool) {
	t, ok := s.gone[k]
	if !ok || s.now().Sub(t) > goneKeep {
		return time.Time{}, false
	}
	return t, true
}
