package cluster

import (
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	informers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/tools/cache"
)

// services is the node's kube-proxy, in its simplest form: each pod's
// namespace DNATs every Service's ClusterIP:port to its ready endpoints
// (spread with the statistic match), as kube-proxy's iptables mode does. The
// client's socket keeps the ClusterIP as its peer, exactly as in a real
// cluster.
//
// Endpoints on other nodes are left out: this cluster simulates no other
// node, so their addresses (pods bound to another Node object, as in
// e2e/scale) lead nowhere, and leaving them out keeps the rules a few
// lines long and unchanged when tens of thousands of such pods churn.
func (c *Cluster) services() {
	rules := c.serviceRules()
	want := strings.Join(rules, "\n")
	c.mu.Lock()
	var stale []*pod
	for _, p := range c.pods {
		if p.host != nil && p.rules != want { // host-network pods: the node's rules
			stale = append(stale, p)
		}
	}
	c.mu.Unlock()
	for _, p := range stale {
		if err := p.program(rules); err == nil {
			p.rules = want // only the kubelet goroutine touches rules
		}
	}
}

// serviceInformers watch Services and EndpointSlices for the rules.
func (c *Cluster) serviceInformers() (svcs, slices cache.SharedIndexInformer) {
	return informers.NewServiceInformer(c.Client, "", 0, cache.Indexers{}),
		discoveryinformers.NewEndpointSliceInformer(c.Client, "", 0, cache.Indexers{})
}

// serviceRules are the DNAT rules every pod's namespace should have, from
// what the informers hold (none before they synced).
func (c *Cluster) serviceRules() []string {
	c.mu.Lock()
	svcStore, sliceStore := c.svcStore, c.sliceStore
	c.mu.Unlock()
	if svcStore == nil {
		return nil
	}
	type key struct{ ns, name string }
	bySvc := map[key][]*discoveryv1.EndpointSlice{}
	for _, obj := range sliceStore.List() {
		sl := obj.(*discoveryv1.EndpointSlice)
		k := key{sl.Namespace, sl.Labels[discoveryv1.LabelServiceName]}
		bySvc[k] = append(bySvc[k], sl)
	}
	var svcs []*corev1.Service
	for _, obj := range svcStore.List() {
		svcs = append(svcs, obj.(*corev1.Service))
	}
	// In a fixed order, so that unchanged rules compare equal.
	sort.Slice(svcs, func(i, j int) bool {
		return svcs[i].Namespace < svcs[j].Namespace || svcs[i].Namespace == svcs[j].Namespace && svcs[i].Name < svcs[j].Name
	})
	var rules []string
	for _, s := range svcs {
		ip := s.Spec.ClusterIP
		if ip == "" || ip == "None" {
			continue
		}
		for _, port := range s.Spec.Ports {
			var backends []string
			for _, sl := range bySvc[key{s.Namespace, s.Name}] {
				var target int32
				for _, p := range sl.Ports {
					if p.Name != nil && *p.Name == port.Name && p.Port != nil {
						target = *p.Port
					}
				}
				for _, e := range sl.Endpoints {
					if target == 0 || (e.Conditions.Ready != nil && !*e.Conditions.Ready) ||
						(e.NodeName != nil && *e.NodeName != Node) {
						continue
					}
					for _, a := range e.Addresses {
						backends = append(backends, fmt.Sprintf("%s:%d", a, target))
					}
				}
			}
			sort.Strings(backends)
			for i, b := range backends {
				rule := fmt.Sprintf("-d %s/32 -p tcp --dport %d", ip, port.Port)
				if left := len(backends) - i; left > 1 {
					rule += fmt.Sprintf(" -m statistic --mode random --probability %.5f", 1/float64(left))
				}
				rules = append(rules, rule+" -j DNAT --to-destination "+b)
			}
		}
	}
	return rules
}

// program replaces the pod's service rules.
func (p *pod) program(rules []string) error {
	run := func(args ...string) error {
		_, err := p.host.Run("iptables", append([]string{"-w", "-t", "nat"}, args...)...)
		return err
	}
	if !p.chained {
		if err := run("-N", "STRATA-SVC"); err != nil {
			return err
		}
		if err := run("-A", "OUTPUT", "-j", "STRATA-SVC"); err != nil {
			return err
		}
		p.chained = true
	}
	if err := run("-F", "STRATA-SVC"); err != nil {
		return err
	}
	for _, r := range rules {
		if err := run(append([]string{"-A", "STRATA-SVC"}, strings.Fields(r)...)...); err != nil {
			return err
		}
	}
	return nil
}
