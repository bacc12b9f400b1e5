package cluster

import (
	"context"
	"fmt"
	"sort"
	"strings"

	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// services is the node's kube-proxy, in its simplest form: each pod's
// namespace DNATs every Service's ClusterIP:port to its ready endpoints
// (spread with the statistic match), as kube-proxy's iptables mode does. The
// client's socket keeps the ClusterIP as its peer, exactly as in a real
// cluster.
func (c *Cluster) services(ctx context.Context) {
	rules, err := c.serviceRules(ctx)
	if err != nil {
		return
	}
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

// serviceRules are the DNAT rules every pod's namespace should have.
func (c *Cluster) serviceRules(ctx context.Context) ([]string, error) {
	svcs, err := c.Client.CoreV1().Services("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	slices, err := c.Client.DiscoveryV1().EndpointSlices("").List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, err
	}
	var rules []string
	for _, s := range svcs.Items {
		ip := s.Spec.ClusterIP
		if ip == "" || ip == "None" {
			continue
		}
		for _, port := range s.Spec.Ports {
			var backends []string
			for _, sl := range slices.Items {
				if sl.Namespace != s.Namespace || sl.Labels[discoveryv1.LabelServiceName] != s.Name {
					continue
				}
				var target int32
				for _, p := range sl.Ports {
					if p.Name != nil && *p.Name == port.Name && p.Port != nil {
						target = *p.Port
					}
				}
				for _, e := range sl.Endpoints {
					if target == 0 || (e.Conditions.Ready != nil && !*e.Conditions.Ready) {
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
	return rules, nil
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
