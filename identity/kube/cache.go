// Package kube names cluster addresses after Kubernetes workloads: which
// pod (and so which Deployment, StatefulSet, DaemonSet, CronJob or Job) has
// an IP, which Service a ClusterIP is, which Service's EndpointSlices hold a
// pod, and which pod a host-network process's cgroup belongs to.
//
// The Cache is fed by informers and answers from what it knows now: an
// address the informers have not reported yet is simply not found, and the
// caller asks again for a later connection.
package kube

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	appsinformers "k8s.io/client-go/informers/apps/v1"
	batchinformers "k8s.io/client-go/informers/batch/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
)

// Kinds of Workload besides the owner kinds Kubernetes itself uses
// (Deployment, StatefulSet, DaemonSet, CronJob, Job, ReplicaSet, ...).
const (
	KindPod     = "Pod"     // a pod no controller owns: named after itself
	KindService = "Service" // a Service address whose backends are not one workload
)

// Workload is what an address or a cgroup means in the cluster.
type Workload struct {
	Namespace string
	Pod       string // "" for a Service address
	Name      string // the owning workload (Deployment, CronJob, ...); the pod's own name for a bare pod
	Kind      string // Deployment, StatefulSet, DaemonSet, CronJob, Job, ReplicaSet, Pod or Service
	Service   string // the Service the address is, or whose EndpointSlices hold it; "" if none
}

// Options tune what the Cache watches.
type Options struct {
	// Node, when set, watches only the pods scheduled on this node. Pods of
	// other nodes are then unknown, so connections to and from them lose
	// their names. The default watches every pod, each reduced to a small
	// record (about 1.1 KiB a pod with its share of Services, ReplicaSets
	// and EndpointSlices: TestMemoryPerPod; a full pod is often ten times
	// that), because that is what resolves a remote pod's IP. Set it only where the agent's memory matters more than
	// naming remote peers.
	Node string
}

// Cache holds the cluster's identity state.
//
// Concurrency: each informer calls its handlers from a goroutine of its
// own, and the agent's event loop reads. Rather than funnel the handlers
// through a channel into one more goroutine (whose state the reader would
// then need a lock or a copy to see anyway), the handlers write and the
// lookups read under one RWMutex: every critical section is a few map
// operations (and, once per change, one scan of a Service's endpoints; see
// backends), so neither side waits measurably.
type Cache struct {
	owners      []cache.SharedIndexInformer // ReplicaSets, Jobs: started first
	others      []cache.SharedIndexInformer // Pods, Services, EndpointSlices
	regs        []cache.ResourceEventHandlerRegistration
	podInformer cache.SharedIndexInformer // tests look at what its store holds
	wg          sync.WaitGroup

	mu sync.RWMutex
	state
}

// New builds a Cache; Start runs it.
func New(client kubernetes.Interface, opts Options) (*Cache, error) {
	c := &Cache{state: newState(time.Now)}
	var tweak func(*metav1.ListOptions)
	if opts.Node != "" {
		sel := fields.OneTermEqualSelector("spec.nodeName", opts.Node).String()
		tweak = func(o *metav1.ListOptions) { o.FieldSelector = sel }
	}
	noIndex := cache.Indexers{}
	c.podInformer = coreinformers.NewFilteredPodInformer(client, "", 0, noIndex, tweak)
	rs := appsinformers.NewReplicaSetInformer(client, "", 0, noIndex)
	jobs := batchinformers.NewJobInformer(client, "", 0, noIndex)
	svcs := coreinformers.NewServiceInformer(client, "", 0, noIndex)
	slices := discoveryinformers.NewEndpointSliceInformer(client, "", 0, noIndex)
	c.owners = []cache.SharedIndexInformer{rs, jobs}
	c.others = []cache.SharedIndexInformer{c.podInformer, svcs, slices}

	for _, w := range []struct {
		inf       cache.SharedIndexInformer
		transform cache.TransformFunc
		h         cache.ResourceEventHandler
	}{
		{rs, parentRecord, handler(c.setParent, c.deleteParent)},
		{jobs, parentRecord, handler(c.setParent, c.deleteParent)},
		{c.podInformer, podRecord, handler(c.setPod, c.deletePod)},
		{svcs, serviceRecord, handler(c.setService, c.deleteService)},
		{slices, sliceRecord, handler(c.setSlice, c.deleteSlice)},
	} {
		if err := w.inf.SetTransform(w.transform); err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
		reg, err := w.inf.AddEventHandler(w.h)
		if err != nil {
			return nil, fmt.Errorf("kube: %w", err)
		}
		c.regs = append(c.regs, reg)
	}
	return c, nil
}

// handler adapts typed functions to informer events. A delete may come as
// a DeletedFinalStateUnknown tombstone (the watch missed the delete and a
// relist found the object gone); its Obj is the last state the informer
// knew, which names the same UID.
func handler[T any](set func(T), del func(T)) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc: func(obj any) {
			if o, ok := obj.(T); ok {
				set(o)
			}
		},
		UpdateFunc: func(_, obj any) {
			if o, ok := obj.(T); ok {
				set(o)
			}
		},
		DeleteFunc: func(obj any) {
			if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = t.Obj
			}
			if o, ok := obj.(T); ok {
				del(o)
			}
		},
	}
}

// Start runs the informers until ctx ends. ReplicaSets and Jobs sync
// before pods are listed, so that every pod of the initial list is counted
// under its Deployment or CronJob (see Gone) rather than its ReplicaSet or
// Job.
func (c *Cache) Start(ctx context.Context) {
	run := func(inf cache.SharedIndexInformer) {
		c.wg.Add(1)
		go func() { defer c.wg.Done(); inf.RunWithContext(ctx) }()
	}
	for _, inf := range c.owners {
		run(inf)
	}
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		if cache.WaitForCacheSync(ctx.Done(), c.regs[0].HasSynced, c.regs[1].HasSynced) {
			for _, inf := range c.others {
				run(inf)
			}
		}
	}()
}

// Wait returns once the informers started by Start have stopped.
func (c *Cache) Wait() { c.wg.Wait() }

// Synced says whether every informer's initial list has reached the
// Cache. Before that, lookups may miss what the cluster has.
func (c *Cache) Synced() bool {
	for _, r := range c.regs {
		if !r.HasSynced() {
			return false
		}
	}
	return true
}

// WaitForSync blocks until Synced or ctx ends.
func (c *Cache) WaitForSync(ctx context.Context) error {
	if !cache.WaitForCacheSync(ctx.Done(), c.Synced) {
		return fmt.Errorf("kube: informers not synced: %w", context.Cause(ctx))
	}
	return nil
}

// ByIP names the pod or Service behind ip from what the informers have
// said so far. Host-network pods are never returned: they share their
// node's IP with every other host process (use ByCgroup). An IP not known
// yet is not found; callers ask again later rather than wait here.
func (c *Cache) ByIP(ip netip.Addr) (Workload, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.byIP(ip.Unmap(), time.Time{})
}

// ByIPAt is ByIP for a connection that started at a given time: it also
// names a pod that has finished since (a Job's), if it finished after at.
func (c *Cache) ByIPAt(ip netip.Addr, at time.Time) (Workload, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.byIP(ip.Unmap(), at)
}

// ByCgroup names the pod whose cgroup path this is (from /proc/PID/cgroup),
// both cgroupfs (".../pod<uid>/<container>") and systemd
// (".../kubepods-burstable-pod<uid_with_underscores>.slice/...") layouts.
// This is how host-network pods, which have no IP of their own, are named.
func (c *Cache) ByCgroup(path string) (Workload, bool) {
	uid, ok := PodUID(path)
	if !ok {
		return Workload{}, false
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	p, ok := c.pods[uid]
	if !ok {
		return Workload{}, false
	}
	return c.podWorkload(p), true
}

// Gone says since when no pod (nor Service) of this name exists in the
// namespace, for a name the Cache has seen: series naming it can be dropped
// once a grace period has passed. It is false while the workload exists,
// and for names never seen or gone longer than an hour (forgotten, to keep
// the memory bounded when names are unique, as with bare pods). A
// Deployment scaled to zero is gone too; a CronJob between runs is not while
// it keeps finished pods.
func (c *Cache) Gone(namespace, workload string) (since time.Time, ok bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.goneSince(nsName{namespace, workload})
}

// Lookup makes the Cache a Directory for Pairs.
func (c *Cache) Lookup(ip netip.Addr, at time.Time) (Entry, bool) {
	w, ok := c.ByIPAt(ip, at)
	return w.Entry(), ok
}

// ByCgroupFile names the pod of a process from its /proc/PID/cgroup
// (lines of hierarchy-ID:controllers:path).
func (c *Cache) ByCgroupFile(content []byte) (Workload, bool) {
	for line := range strings.SplitSeq(string(content), "\n") {
		if f := strings.SplitN(line, ":", 3); len(f) == 3 {
			if w, ok := c.ByCgroup(f[2]); ok {
				return w, true
			}
		}
	}
	return Workload{}, false
}

// Entry is what Pairs needs of a Workload.
func (w Workload) Entry() Entry {
	return Entry{Namespace: w.Namespace, Workload: w.Name, Service: w.Service}
}

var _ Directory = (*Cache)(nil)

// The handlers get the records the transforms made (slim.go) and apply
// them under the lock.

func (c *Cache) setParent(p *parent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.putParent(p.uid, p.owner)
}

func (c *Cache) deleteParent(p *parent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropParent(p.uid)
}

func (c *Cache) setPod(p *pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.upsertPod(p)
}

func (c *Cache) deletePod(p *pod) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removePod(p.uid)
}

func (c *Cache) setService(s *service) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.upsertService(s)
}

func (c *Cache) deleteService(s *service) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeService(s.uid)
}

func (c *Cache) setSlice(s *slice) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.upsertSlice(s)
}

func (c *Cache) deleteSlice(s *slice) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.removeSlice(s.uid)
}
