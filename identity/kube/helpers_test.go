package kube

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
)

var t0 = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)

// uid makes the n-th UID, in the 8-4-4-4-12 form cgroup paths carry.
func uid(n int) types.UID { return types.UID(fmt.Sprintf("0000abcd-0000-4000-8000-%012d", n)) }

func ctrl(kind, name string, u types.UID) []metav1.OwnerReference {
	yes := true
	return []metav1.OwnerReference{{APIVersion: "apps/v1", Kind: kind, Name: name, UID: u, Controller: &yes}}
}

func mkPod(ns, name string, u types.UID, ip string, owner []metav1.OwnerReference) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: u, CreationTimestamp: metav1.NewTime(t0), OwnerReferences: owner},
		Status:     corev1.PodStatus{Phase: corev1.PodRunning, PodIP: ip, PodIPs: []corev1.PodIP{{IP: ip}}},
	}
}

func mkRS(ns, name string, u types.UID, owner []metav1.OwnerReference) *appsv1.ReplicaSet {
	return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: u, OwnerReferences: owner}}
}

func mkJob(ns, name string, u types.UID, owner []metav1.OwnerReference) *batchv1.Job {
	return &batchv1.Job{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: u, OwnerReferences: owner}}
}

func mkService(ns, name string, u types.UID, clusterIPs ...string) *corev1.Service {
	s := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name, UID: u}}
	if len(clusterIPs) > 0 {
		s.Spec.ClusterIP, s.Spec.ClusterIPs = clusterIPs[0], clusterIPs
	}
	return s
}

// mkSlice holds pod endpoints at podIPs and, after a "|", endpoints
// without a targetRef.
func mkSlice(ns, name string, u types.UID, svc string, addrs ...string) *discoveryv1.EndpointSlice {
	s := &discoveryv1.EndpointSlice{
		ObjectMeta:  metav1.ObjectMeta{Namespace: ns, Name: name, UID: u, Labels: map[string]string{discoveryv1.LabelServiceName: svc}},
		AddressType: discoveryv1.AddressTypeIPv4,
	}
	isPod := true
	for _, a := range addrs {
		if a == "|" {
			isPod = false
			continue
		}
		e := discoveryv1.Endpoint{Addresses: []string{a}}
		if isPod {
			e.TargetRef = &corev1.ObjectReference{Kind: "Pod", Namespace: ns, Name: "p-" + a}
		}
		s.Endpoints = append(s.Endpoints, e)
	}
	return s
}

// clock is a settable time for Gone.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time   { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) set(t time.Time)  { c.mu.Lock(); defer c.mu.Unlock(); c.t = t }
func newClock(t time.Time) *clock { return &clock{t: t} }

// start runs a Cache over a fake cluster holding objs and waits for its
// initial sync.
func start(t *testing.T, opts Options, objs ...runtime.Object) (*Cache, *fake.Clientset) {
	t.Helper()
	return startAt(t, opts, time.Now, objs...)
}

// startAt is start with the Cache's clock given.
func startAt(t *testing.T, opts Options, now func() time.Time, objs ...runtime.Object) (*Cache, *fake.Clientset) {
	t.Helper()
	return startClient(t, fake.NewClientset(objs...), opts, now)
}

func startClient(t *testing.T, client *fake.Clientset, opts Options, now func() time.Time) (*Cache, *fake.Clientset) {
	t.Helper()
	c, err := New(client, opts)
	if err != nil {
		t.Fatal(err)
	}
	c.now = now // no handler runs before Start
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(func() { cancel(); c.Wait() })
	if c.Synced() {
		t.Fatal("Synced before Start")
	}
	c.Start(ctx)
	wctx, wcancel := context.WithTimeout(ctx, 20*time.Second)
	defer wcancel()
	if err := c.WaitForSync(wctx); err != nil {
		t.Fatal(err)
	}
	if !c.Synced() {
		t.Fatal("WaitForSync returned, Synced is false")
	}
	return c, client
}

// waitFor polls cond until it holds or the deadline passes: informer
// events arrive asynchronously, and there is nothing else to wait on.
func waitFor(t *testing.T, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out: %s", what())
		}
		time.Sleep(time.Millisecond)
	}
}

// wantIP waits until ip resolves to exactly want (ok false: to nothing).
func wantIP(t *testing.T, c *Cache, ip string, want Workload, wantOK bool) {
	t.Helper()
	var got Workload
	var ok bool
	waitFor(t, func() string {
		return fmt.Sprintf("ByIP(%s) = %+v, %v; want %+v, %v", ip, got, ok, want, wantOK)
	}, func() bool {
		got, ok = c.ByIP(netip.MustParseAddr(ip))
		return got == want && ok == wantOK
	})
}

// checkIP asserts what ip resolves to now.
func checkIP(t *testing.T, c *Cache, ip string, want Workload, wantOK bool) {
	t.Helper()
	if got, ok := c.ByIP(netip.MustParseAddr(ip)); got != want || ok != wantOK {
		t.Errorf("ByIP(%s) = %+v, %v; want %+v, %v", ip, got, ok, want, wantOK)
	}
}

// cgroupOf is a cgroupfs path of a container of the pod.
func cgroupOf(u types.UID) string {
	return "/kubepods/burstable/pod" + string(u) + "/0123456789abcdef"
}
