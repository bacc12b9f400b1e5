package kube

import (
	"context"
	"fmt"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

// direct is a Cache without informers, fed event by event through the
// same handlers the informers call, to fix the order of events exactly.
type direct struct {
	*Cache
	onPod, onSvc, onSlice, onRS cache.ResourceEventHandler
}

func newDirect() direct {
	c := &Cache{state: newState(func() time.Time { return t0 })}
	return direct{
		Cache:   c,
		onPod:   via(podRecord, handler(c.setPod, c.deletePod)),
		onSvc:   via(serviceRecord, handler(c.setService, c.deleteService)),
		onSlice: via(sliceRecord, handler(c.setSlice, c.deleteSlice)),
		onRS:    via(parentRecord, handler(c.setParent, c.deleteParent)),
	}
}

// via hands h what an informer would: every object, a tombstone's too,
// through the transform first.
func via(transform cache.TransformFunc, h cache.ResourceEventHandler) cache.ResourceEventHandler {
	tr := func(obj any) any {
		if t, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			t.Obj, _ = transform(t.Obj)
			return t
		}
		obj, _ = transform(obj)
		return obj
	}
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { h.OnAdd(tr(obj), false) },
		UpdateFunc: func(old, obj any) { h.OnUpdate(tr(old), tr(obj)) },
		DeleteFunc: func(obj any) { h.OnDelete(tr(obj)) },
	}
}

func tombstone(obj runtime.Object) cache.DeletedFinalStateUnknown {
	m := obj.(metav1.Object)
	return cache.DeletedFinalStateUnknown{Key: m.GetNamespace() + "/" + m.GetName(), Obj: obj}
}

func at(p *corev1.Pod, d time.Duration) *corev1.Pod {
	p.CreationTimestamp = metav1.NewTime(t0.Add(d))
	return p
}

func TestIPReuseOrders(t *testing.T) {
	const ip = "10.244.0.7"
	old := func() *corev1.Pod { return mkPod("shop", "old", uid(1), ip, nil) }
	newer := func() *corev1.Pod { return at(mkPod("shop", "new", uid(2), ip, nil), time.Minute) }
	newW := Workload{Namespace: "shop", Pod: "new", Name: "new", Kind: KindPod}
	oldW := Workload{Namespace: "shop", Pod: "old", Name: "old", Kind: KindPod}
	finished := func(p *corev1.Pod) *corev1.Pod { p.Status.Phase = corev1.PodSucceeded; return p }

	for _, tc := range []struct {
		name   string
		events func(d direct)
		want   Workload
	}{
		{"delete then add", func(d direct) {
			d.onPod.OnAdd(old(), false)
			d.onPod.OnDelete(old())
			d.onPod.OnAdd(newer(), false)
		}, newW},
		{"add then delete", func(d direct) {
			d.onPod.OnAdd(old(), false)
			d.onPod.OnAdd(newer(), false)
			d.onPod.OnDelete(old())
		}, newW},
		{"add then tombstone", func(d direct) {
			d.onPod.OnAdd(old(), false)
			d.onPod.OnAdd(newer(), false)
			d.onPod.OnDelete(tombstone(old()))
		}, newW},
		{"old pod's late update", func(d direct) {
			d.onPod.OnAdd(old(), false)
			d.onPod.OnAdd(newer(), false)
			d.onPod.OnUpdate(old(), old())
		}, newW},
		{"new pod listed first", func(d direct) {
			d.onPod.OnAdd(newer(), true)
			d.onPod.OnAdd(old(), true)
		}, newW},
		{"finished pod listed last", func(d direct) {
			d.onPod.OnAdd(old(), true)
			d.onPod.OnAdd(finished(newer()), true) // finished pods keep their IP in status
		}, oldW},
		{"finished pod listed first", func(d direct) {
			d.onPod.OnAdd(finished(newer()), true)
			d.onPod.OnAdd(old(), true)
		}, oldW},
		{"new pod gone, old pod still claims", func(d direct) {
			d.onPod.OnAdd(old(), false)
			d.onPod.OnAdd(newer(), false)
			d.onPod.OnDelete(newer())
		}, oldW},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := newDirect()
			tc.events(d)
			checkIP(t, d.Cache, ip, tc.want, true)
		})
	}

	t.Run("pod changes IP, then finishes", func(t *testing.T) {
		d := newDirect()
		p := old()
		d.onPod.OnAdd(p, false)
		moved := old()
		moved.Status.PodIP, moved.Status.PodIPs = "10.244.0.8", []corev1.PodIP{{IP: "10.244.0.8"}, {IP: "fd00::8"}}
		d.onPod.OnUpdate(p, moved)
		checkIP(t, d.Cache, ip, Workload{}, false)
		checkIP(t, d.Cache, "10.244.0.8", oldW, true)
		checkIP(t, d.Cache, "fd00::8", oldW, true)
		d.onPod.OnUpdate(moved, finished(old()))
		checkIP(t, d.Cache, "10.244.0.8", Workload{}, false)
		if w, ok := d.ByCgroup(cgroupOf(uid(1))); !ok || w != oldW {
			t.Errorf("a finished pod is still a pod: ByCgroup = %+v, %v", w, ok)
		}
	})
}

func TestTombstones(t *testing.T) {
	d := newDirect()
	rs := mkRS("shop", "web-abc", uid(101), ctrl("Deployment", "web", uid(201)))
	p := mkPod("shop", "web-abc-1", uid(1), "10.244.0.1", ctrl("ReplicaSet", "web-abc", uid(101)))
	svc := mkService("shop", "web", uid(301), "10.96.0.10")
	sl := mkSlice("shop", "web-s", uid(401), "web", "10.244.0.1", "|", "192.0.2.7")
	d.onRS.OnAdd(rs, true)
	d.onPod.OnAdd(p, true)
	d.onSvc.OnAdd(svc, true)
	d.onSlice.OnAdd(sl, true)
	checkIP(t, d.Cache, "10.244.0.1", Workload{Namespace: "shop", Pod: "web-abc-1", Name: "web", Kind: "Deployment", Service: "web"}, true)

	// The ReplicaSet's tombstone: no hash label to go by, so the pod is
	// named after its ReplicaSet.
	d.onRS.OnDelete(tombstone(rs))
	checkIP(t, d.Cache, "10.244.0.1", Workload{Namespace: "shop", Pod: "web-abc-1", Name: "web-abc", Kind: "ReplicaSet", Service: "web"}, true)
	d.onSlice.OnDelete(tombstone(sl))
	checkIP(t, d.Cache, "10.244.0.1", Workload{Namespace: "shop", Pod: "web-abc-1", Name: "web-abc", Kind: "ReplicaSet"}, true)
	checkIP(t, d.Cache, "192.0.2.7", Workload{}, false)
	checkIP(t, d.Cache, "10.96.0.10", Workload{Namespace: "shop", Name: "web", Kind: KindService, Service: "web"}, true)
	d.onSvc.OnDelete(tombstone(svc))
	checkIP(t, d.Cache, "10.96.0.10", Workload{}, false)
	d.onPod.OnDelete(tombstone(p))
	checkIP(t, d.Cache, "10.244.0.1", Workload{}, false)
	if _, ok := d.ByCgroup(cgroupOf(uid(1))); ok {
		t.Error("ByCgroup finds a pod deleted by tombstone")
	}
	// web-abc-1 was counted under web: now nothing named web is left.
	for _, name := range []string{"web", "web-abc"} {
		since, ok := d.Gone("shop", name)
		if want := name == "web"; ok != want || (ok && !since.Equal(t0)) {
			t.Errorf("Gone(shop, %s) = %v, %v; want %v", name, since, ok, want)
		}
	}
	// A tombstone without an object of the kind changes nothing.
	d.onPod.OnDelete(cache.DeletedFinalStateUnknown{Key: "shop/x"})
	d.onPod.OnDelete(tombstone(mkService("shop", "x", uid(9), "")))

	// All state is gone with the objects.
	d.mu.RLock()
	defer d.mu.RUnlock()
	if n := len(d.pods) + len(d.podIPs) + len(d.parents) + len(d.svcs) + len(d.vips) + len(d.slices) + len(d.members) + len(d.svcSlices) + len(d.live); n != 0 {
		t.Errorf("%d entries left after every object's delete", n)
	}
}

// TestTombstoneFromRelist makes the informer itself deliver a tombstone:
// the pods watch misses a delete, then fails as expired, and the relist
// no longer holds the pod.
func TestTombstoneFromRelist(t *testing.T) {
	client := fake.NewClientset(mkPod("shop", "a", uid(1), "10.244.0.1", nil), mkPod("shop", "b", uid(2), "10.244.0.2", nil))
	blind := watch.NewRaceFreeFake()
	var watches atomic.Int32
	client.PrependWatchReactor("pods", func(clienttesting.Action) (bool, watch.Interface, error) {
		if watches.Add(1) == 1 {
			return true, blind, nil // the first watch sees nothing
		}
		return false, nil, nil // later ones are the fake's own
	})
	c, err := New(client, Options{})
	if err != nil {
		t.Fatal(err)
	}
	var tombstones atomic.Int32
	if _, err := c.podInformer.AddEventHandler(cache.ResourceEventHandlerFuncs{DeleteFunc: func(obj any) {
		if _, ok := obj.(cache.DeletedFinalStateUnknown); ok {
			tombstones.Add(1)
		}
	}}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); c.Wait() })
	c.Start(ctx)
	if err := c.WaitForSync(ctx); err != nil {
		t.Fatal(err)
	}
	checkIP(t, c, "10.244.0.1", Workload{Namespace: "shop", Pod: "a", Name: "a", Kind: KindPod}, true)

	waitFor(t, func() string { return "the first pods watch" }, func() bool { return watches.Load() >= 1 })
	if err := client.Tracker().Delete(schema.GroupVersionResource{Version: "v1", Resource: "pods"}, "shop", "a"); err != nil {
		t.Fatal(err)
	}
	expired := apierrors.NewResourceExpired("too old resource version")
	blind.Error(&expired.ErrStatus)
	wantIP(t, c, "10.244.0.1", Workload{}, false)
	if n := tombstones.Load(); n != 1 {
		t.Errorf("%d tombstones delivered, want 1", n)
	}
	checkIP(t, c, "10.244.0.2", Workload{Namespace: "shop", Pod: "b", Name: "b", Kind: KindPod}, true)
	if _, ok := c.ByCgroup(cgroupOf(uid(1))); ok {
		t.Error("ByCgroup finds the pod the tombstone deleted")
	}
}

// TestClusterIPBackends: a ClusterIP is named after the workload behind
// it for as long as there is exactly one, through every kind of change.
func TestClusterIPBackends(t *testing.T) {
	d := newDirect()
	web := Workload{Namespace: "shop", Name: "web", Kind: "Deployment", Service: "web"}
	mixed := Workload{Namespace: "shop", Name: "web", Kind: KindService, Service: "web"}
	d.onRS.OnAdd(mkRS("shop", "web-h", uid(101), ctrl("Deployment", "web", uid(201))), true)
	d.onPod.OnAdd(mkPod("shop", "web-h-1", uid(1), "10.244.0.1", ctrl("ReplicaSet", "web-h", uid(101))), true)
	d.onSvc.OnAdd(mkService("shop", "web", uid(301), "10.96.0.10"), true)
	checkIP(t, d.Cache, "10.96.0.10", mixed, true) // no endpoints yet
	sl := mkSlice("shop", "web-s", uid(401), "web", "10.244.0.1")
	d.onSlice.OnAdd(sl, true)
	checkIP(t, d.Cache, "10.96.0.10", web, true)
	sl2 := mkSlice("shop", "web-s", uid(401), "web", "10.244.0.1", "10.244.0.3")
	d.onSlice.OnUpdate(sl, sl2)
	checkIP(t, d.Cache, "10.96.0.10", web, true) // 10.244.0.3 is no known pod yet
	cache0 := mkPod("shop", "cache-0", uid(3), "10.244.0.3", ctrl("StatefulSet", "cache", uid(203)))
	d.onPod.OnAdd(cache0, false)
	checkIP(t, d.Cache, "10.96.0.10", mixed, true)
	d.onPod.OnDelete(cache0)
	checkIP(t, d.Cache, "10.96.0.10", web, true)
	d.onRS.OnDelete(mkRS("shop", "web-h", uid(101), nil))
	checkIP(t, d.Cache, "10.96.0.10", Workload{Namespace: "shop", Name: "web-h", Kind: "ReplicaSet", Service: "web"}, true)
}

// BenchmarkByIP: a pod IP costs a few map reads; a ClusterIP costs one
// lookup per endpoint of its Service (here 1000).
func BenchmarkByIP(b *testing.B) {
	d := newDirect()
	d.onRS.OnAdd(mkRS("ns", "web-h", uid(100000), ctrl("Deployment", "web", uid(200000))), true)
	var addrs []string
	for i := range 1000 {
		ip := fmt.Sprintf("10.1.%d.%d", i/250, i%250+1)
		d.onPod.OnAdd(mkPod("ns", fmt.Sprintf("web-h-%d", i), uid(i), ip, ctrl("ReplicaSet", "web-h", uid(100000))), true)
		addrs = append(addrs, ip)
	}
	d.onSvc.OnAdd(mkService("ns", "web", uid(300000), "10.96.0.1"), true)
	d.onSlice.OnAdd(mkSlice("ns", "web-s", uid(400000), "web", addrs...), true)
	for _, tc := range []struct{ name, ip, want string }{{"pod", "10.1.0.1", "web"}, {"clusterIP", "10.96.0.1", "web"}} {
		b.Run(tc.name, func(b *testing.B) {
			ip := netip.MustParseAddr(tc.ip)
			for b.Loop() {
				if w, ok := d.ByIP(ip); !ok || w.Name != tc.want {
					b.Fatalf("ByIP = %+v, %v", w, ok)
				}
			}
		})
	}
}

// A Job's pod often connects and finishes before the agent hears its IP:
// its connections are still named after it, as of when they started,
// while a connection that starts after it finished is not.
func TestFinishedPodNamesItsPast(t *testing.T) {
	d := newDirect()
	now := t0
	d.Cache.state.now = func() time.Time { return now }
	const ip = "10.244.0.9"
	job := func() *corev1.Pod { return mkPod("shop", "once", uid(1), ip, nil) }
	done := job()
	done.Status.Phase = corev1.PodSucceeded
	d.onPod.OnAdd(done, false) // first heard of when it had finished
	onceW := Workload{Namespace: "shop", Pod: "once", Name: "once", Kind: KindPod}
	addr := netip.MustParseAddr(ip)
	if w, ok := d.ByIPAt(addr, t0.Add(-time.Second)); !ok || w != onceW {
		t.Errorf("a connection from before it finished: %+v, %v; want %+v", w, ok, onceW)
	}
	if w, ok := d.ByIPAt(addr, t0.Add(endedSlack+time.Millisecond)); ok {
		t.Errorf("a connection from after it finished is named %+v", w)
	}
	if w, ok := d.ByIP(addr); ok {
		t.Errorf("a finished pod's IP names %+v now", w)
	}
	// Later updates of the finished pod do not move when it ended.
	now = now.Add(time.Minute)
	d.onPod.OnUpdate(done, done)
	if _, ok := d.ByIPAt(addr, t0.Add(30*time.Second)); ok {
		t.Error("a finished pod's end moved with a later update")
	}
	// A new pod at the same IP is the IP's from then on.
	d.onPod.OnAdd(at(mkPod("shop", "next", uid(2), ip, nil), time.Minute), false)
	if w, ok := d.ByIPAt(addr, now); !ok || w.Pod != "next" {
		t.Errorf("the IP's new pod: %+v, %v", w, ok)
	}
}

func TestByCgroupFile(t *testing.T) {
	d := newDirect()
	d.onPod.OnAdd(mkPod("shop", "agent", uid(7), "", nil), false)
	file := "12:cpuset:/\n0::" + cgroupOf(uid(7)) + "\n"
	want := Workload{Namespace: "shop", Pod: "agent", Name: "agent", Kind: KindPod}
	if w, ok := d.ByCgroupFile([]byte(file)); !ok || w != want {
		t.Errorf("ByCgroupFile = %+v, %v; want %+v", w, ok, want)
	}
	if w, ok := d.ByCgroupFile([]byte("0::/system.slice/sshd.service\n")); ok {
		t.Errorf("a node daemon named %+v", w)
	}
}
