package kube

import (
	"net/netip"
	"slices"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The informers' transforms keep only what identity reads, so that their
// stores (which hold every pod, Service, EndpointSlice, ReplicaSet and Job
// of the cluster) cost a few hundred bytes an object instead of the many
// kilobytes of a full pod with its managedFields, annotations and spec.
// Each builds a new object from the fields it keeps, so it is idempotent
// and passes anything it does not know through unchanged.

// slimMeta keeps identity, the controller reference and what the informer
// itself needs (resourceVersion). Labels and annotations go.
func slimMeta(m *metav1.ObjectMeta) metav1.ObjectMeta {
	out := metav1.ObjectMeta{
		Name:              m.Name,
		Namespace:         m.Namespace,
		UID:               m.UID,
		ResourceVersion:   m.ResourceVersion,
		CreationTimestamp: m.CreationTimestamp,
	}
	for _, o := range m.OwnerReferences {
		if o.Controller != nil && *o.Controller {
			out.OwnerReferences = []metav1.OwnerReference{o}
			break
		}
	}
	return out
}

func slimPod(obj any) (any, error) {
	p, ok := obj.(*corev1.Pod)
	if !ok {
		return obj, nil
	}
	out := &corev1.Pod{
		ObjectMeta: slimMeta(&p.ObjectMeta),
		Spec:       corev1.PodSpec{HostNetwork: p.Spec.HostNetwork},
		Status:     corev1.PodStatus{Phase: p.Status.Phase, PodIP: p.Status.PodIP, PodIPs: p.Status.PodIPs},
	}
	if h, ok := p.Labels[appsv1.DefaultDeploymentUniqueLabelKey]; ok {
		out.Labels = map[string]string{appsv1.DefaultDeploymentUniqueLabelKey: h}
	}
	return out, nil
}

func slimService(obj any) (any, error) {
	s, ok := obj.(*corev1.Service)
	if !ok {
		return obj, nil
	}
	return &corev1.Service{
		ObjectMeta: slimMeta(&s.ObjectMeta),
		Spec:       corev1.ServiceSpec{ClusterIP: s.Spec.ClusterIP, ClusterIPs: s.Spec.ClusterIPs},
	}, nil
}

// slimEndpointSlice keeps the Service's name, the addresses and whether
// each endpoint is a Pod (only the targetRef's kind); ports, conditions,
// zones and hints go.
func slimEndpointSlice(obj any) (any, error) {
	s, ok := obj.(*discoveryv1.EndpointSlice)
	if !ok {
		return obj, nil
	}
	out := &discoveryv1.EndpointSlice{ObjectMeta: slimMeta(&s.ObjectMeta), AddressType: s.AddressType}
	if svc, ok := s.Labels[discoveryv1.LabelServiceName]; ok {
		out.Labels = map[string]string{discoveryv1.LabelServiceName: svc}
	}
	for _, e := range s.Endpoints {
		se := discoveryv1.Endpoint{Addresses: e.Addresses}
		if e.TargetRef != nil && e.TargetRef.Kind == "Pod" {
			se.TargetRef = &corev1.ObjectReference{Kind: "Pod"}
		}
		out.Endpoints = append(out.Endpoints, se)
	}
	return out, nil
}

// ReplicaSets and Jobs matter only for their controller.
func slimReplicaSet(obj any) (any, error) {
	if r, ok := obj.(*appsv1.ReplicaSet); ok {
		return &appsv1.ReplicaSet{ObjectMeta: slimMeta(&r.ObjectMeta)}, nil
	}
	return obj, nil
}

func slimJob(obj any) (any, error) {
	if j, ok := obj.(*batchv1.Job); ok {
		return &batchv1.Job{ObjectMeta: slimMeta(&j.ObjectMeta)}, nil
	}
	return obj, nil
}

// From (slim) API objects to the Cache's own records.

func controllerOf(o metav1.Object) ref {
	if c := metav1.GetControllerOfNoCopy(o); c != nil {
		return ref{kind: c.Kind, name: c.Name, uid: c.UID}
	}
	return ref{}
}

func podOf(p *corev1.Pod) *pod {
	info := &pod{
		uid:         p.UID,
		ns:          p.Namespace,
		name:        p.Name,
		hostNetwork: p.Spec.HostNetwork,
		terminal:    p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed,
		created:     p.CreationTimestamp.Time,
		owner:       controllerOf(p),
		hash:        p.Labels[appsv1.DefaultDeploymentUniqueLabelKey],
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
	return info
}

func serviceOf(s *corev1.Service) *service {
	info := &service{uid: s.UID, ns: s.Namespace, name: s.Name}
	for _, a := range append([]string{s.Spec.ClusterIP}, s.Spec.ClusterIPs...) {
		// "None" (headless) and "" (ExternalName) do not parse.
		if ip, err := netip.ParseAddr(a); err == nil && !slices.Contains(info.ips, ip.Unmap()) {
			info.ips = append(info.ips, ip.Unmap())
		}
	}
	return info
}

func sliceOf(s *discoveryv1.EndpointSlice) *slice {
	info := &slice{uid: s.UID, ns: s.Namespace, svc: s.Labels[discoveryv1.LabelServiceName]}
	if s.AddressType == discoveryv1.AddressTypeFQDN {
		return info
	}
	for _, e := range s.Endpoints {
		isPod := e.TargetRef != nil && e.TargetRef.Kind == "Pod"
		for _, a := range e.Addresses {
			if ip, err := netip.ParseAddr(a); err == nil {
				info.eps = append(info.eps, endpoint{ip.Unmap(), isPod})
			}
		}
	}
	return info
}
