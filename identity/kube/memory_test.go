package kube

import (
	"fmt"
	"runtime"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/cache"
)

// TestMemoryPerPod: what a cluster costs the Cache, a pod at a time, with
// a ReplicaSet, a Service and an EndpointSlice for every five pods (the
// shape of e2e/scale): the records in the informers' stores (keyed as
// client-go keys them) and the Cache's indexes over them, after a GC.
// The target is 1.5 KiB a pod.
func TestMemoryPerPod(t *testing.T) {
	const pods, perWorkload = 20000, 5
	c := &Cache{state: newState(func() time.Time { return t0 })}
	stores := map[string]cache.Indexer{}
	for _, k := range []string{"pods", "rs", "svcs", "slices"} {
		stores[k] = cache.NewIndexer(cache.DeletionHandlingMetaNamespaceKeyFunc, cache.Indexers{})
	}
	add := func(store string, transform cache.TransformFunc, obj any) any {
		rec, err := transform(obj)
		if err != nil {
			t.Fatal(err)
		}
		if err := stores[store].Add(rec); err != nil {
			t.Fatal(err)
		}
		return rec
	}
	before := heap()
	for w := range pods / perWorkload {
		ns, name := fmt.Sprintf("team-%02d", w%20), fmt.Sprintf("checkout-api-%05d", w)
		rs := mkRS(ns, name+"-5d8f7c9b6", uid(1_000_000+w), ctrl("Deployment", name, uid(2_000_000+w)))
		rs.Labels = map[string]string{"app": name, "pod-template-hash": "5d8f7c9b6"}
		c.setParent(add("rs", parentRecord, rs).(*parent))
		svc := mkService(ns, name, uid(3_000_000+w), fmt.Sprintf("10.96.%d.%d", w/250, w%250+1))
		svc.Spec.Selector = map[string]string{"app": name}
		svc.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80}}
		c.setService(add("svcs", serviceRecord, svc).(*service))
		var ips []string
		for i := range perWorkload {
			n := w*perWorkload + i
			ip := fmt.Sprintf("10.%d.%d.%d", 128+n>>16, n>>8&255, n&255)
			p := mkPod(ns, fmt.Sprintf("%s-5d8f7c9b6-%05x", name, n), uid(n), ip, ctrl("ReplicaSet", rs.Name, rs.UID))
			p.Labels = map[string]string{"app": name, "pod-template-hash": "5d8f7c9b6", "tier": "backend"}
			p.Annotations = map[string]string{"prometheus.io/scrape": "true"}
			p.ResourceVersion = fmt.Sprint(100000 + n)
			p.Spec.NodeName = "node-2"
			p.Spec.Containers = []corev1.Container{{Name: "app", Image: "registry.example.com/team/app:1.42.0"}}
			p.Status.HostIP = "192.0.2.2"
			p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: metav1.NewTime(t0)}}
			c.setPod(add("pods", podRecord, p).(*pod))
			ips = append(ips, ip)
		}
		sl := mkSlice(ns, name+"-x7k2p", uid(4_000_000+w), name, ips...)
		sl.AddressType = discoveryv1.AddressTypeIPv4
		c.setSlice(add("slices", sliceRecord, sl).(*slice))
	}
	perPod := float64(heap()-before) / pods
	t.Logf("%.0f bytes a pod (all objects included)", perPod)
	if perPod > 1536 {
		t.Errorf("%.0f bytes a pod, target 1536", perPod)
	}
	// Still all there, and resolving.
	if len(c.pods) != pods || len(stores["pods"].ListKeys()) != pods || len(c.members) != pods {
		t.Errorf("%d pods, %d stored, %d endpoints", len(c.pods), len(stores["pods"].ListKeys()), len(c.members))
	}
	runtime.KeepAlive(stores)
	runtime.KeepAlive(c)
}

// heap is the bytes live after a collection.
func heap() uint64 {
	var m runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}
