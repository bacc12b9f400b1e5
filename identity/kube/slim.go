package kube

import (
	"net/netip"
	"slices"
	"unique"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

// The informers' transforms turn each API object into the Cache's own
// record of it, and that record is what the informer's store keeps and
// what the Cache indexes: one small struct per object rather than a
// stripped API object beside a record made from it (a corev1.Pod with
// every field but five zeroed is still over a kilobyte of struct). What
// the pods of one workload share (namespace, controller, template hash)
// is one interned value. See TestRecordsKeep for exactly what is kept, and
// docs/performance.md for what it costs a pod.
//
// A transform passes anything it does not know through unchanged (a
// record already made, on a relist), as client-go asks.

// meta is what a record keeps of its object's metadata: the UID the Cache
// indexes by, the namespace and name the informer's store keys by, and the
// resourceVersion the informer compares to tell a change from a resync.
type meta struct {
	uid      types.UID
	ns, name string
	rv       string
}

func metaOf(m *metav1.ObjectMeta) meta {
	return meta{uid: m.UID, ns: m.Namespace, name: m.Name, rv: m.ResourceVersion}
}

// GetObjectMeta makes a record something the informer's store can key
// (meta.Accessor takes an ObjectMetaAccessor). It is called a few times
// an event; what it builds is short-lived.
func (m *meta) GetObjectMeta() metav1.Object {
	return &metav1.ObjectMeta{UID: m.uid, Namespace: m.ns, Name: m.name, ResourceVersion: m.rv}
}

// origin is what a pod shares with its siblings: its namespace, its
// controller, and the pod-template-hash label (to name a Deployment
// before its ReplicaSet is known). Interned (package unique): the pods of
// a workload hold one copy of it, kept while one of them is.
type origin struct {
	ns    string
	owner ref
	hash  string
}

func controllerOf(m *metav1.ObjectMeta) ref {
	if c := metav1.GetControllerOfNoCopy(m); c != nil {
		return ref{kind: c.Kind, name: c.Name, uid: c.UID}
	}
	return ref{}
}

func podRecord(obj any) (any, error) {
	if p, ok := obj.(*corev1.Pod); ok {
		return podOf(p), nil
	}
	return obj, nil
}

func podOf(p *corev1.Pod) *pod {
	o := unique.Make(origin{ns: p.Namespace, owner: controllerOf(&p.ObjectMeta), hash: p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]})
	info := &pod{
		meta:        meta{uid: p.UID, ns: o.Value().ns, name: p.Name, rv: p.ResourceVersion},
		origin:      o,
		hostNetwork: p.Spec.HostNetwork,
		terminal:    p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed,
		created:     p.CreationTimestamp.Time,
	}
	add := func(s string) {
		if ip, err := netip.ParseAddr(s); err == nil && !slices.Contains(info.ips, ip.Unmap()) {
			info.ips = append(info.ips, ip.Unmap())
		}
	}
	add(p.Status.PodIP)
	for _, ip := range p.Status.PodIPs {
		add(ip.IP)
	}
	info.ips = slices.Clip(info.ips)
	return info
}

func serviceRecord(obj any) (any, error) {
	s, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	info := &service{meta: metaOf(&s.ObjectMeta)}
	for _, a := range append([]string{s.Spec.ClusterIP}, s.Spec.ClusterIPs...) {
		// "None" (headless) and "" (ExternalName) do not parse.
		if ip, err := netip.ParseAddr(a); err == nil && !slices.Contains(info.ips, ip.Unmap()) {
			info.ips = append(info.ips, ip.Unmap())
		}
	}
	info.ips = slices.Clip(info.ips)
	return info, nil
}

// sliceRecord keeps the Service's name, the addresses and whether each
// endpoint is a Pod (the targetRef's kind); ports, conditions, zones,
// hints and the targets' names go.
func sliceRecord(obj any) (any, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	info := &slice{meta: metaOf(&s.ObjectMeta), svc: s.Labels[discoveryv1.LabelServiceName]}
	if s.AddressType == discoveryv1.AddressTypeFQDN {
		return info, nil
	}
	for _, e := range s.Endpoints {
		isPod := e.TargetRef != nil && e.TargetRef.Kind == "Pod"
		for _, a := range e.Addresses {
			if ip, err := netip.ParseAddr(a); err == nil {
				info.eps = append(info.eps, endpoint{ip.Unmap(), isPod})
			}
		}
	}
	info.eps = slices.Clip(info.eps)
	return info, nil
}

// ReplicaSets and Jobs matter only for their controller.
func parentRecord(obj any) (any, error) {
	var m *metav1.ObjectMeta
	switch o := obj.(type) {
	case *appsv1.ReplicaSet:
		m = &o.ObjectMeta
	case *batchv1.Job:
		m = &o.ObjectMeta
	default:
		return obj, nil
	}
	return &parent{meta: metaOf(m), owner: controllerOf(m)}, nil
}
