// Package kube_test runs the agent with Kubernetes identity against a real
// control plane (e2e/cluster) and checks that series name workloads and
// Services, never pod addresses, through pod churn.
package kube_test

import (
	"strings"
	"testing"

	"github.com/stratanet/strata/e2e/cluster"
	"github.com/stratanet/strata/e2e/harness"
)

var bin string

func TestMain(m *testing.M) {
	harness.Main(m, &bin, map[string]string{
		"strata-agent": "../../agent/cmd/strata-agent",
		"tcpserver":    "../cmd/tcpserver",
		"tcpclient":    "../cmd/tcpclient",
		"dnsquery":     "../cmd/dnsquery",
		"resolve":      "../cmd/resolve",
		"httpserver":   "../cmd/httpserver",
		"httpclient":   "../cmd/httpclient",
	})
}

type labels = harness.Labels

// TestManifests: the shipped manifests are valid for a real API server.
func TestManifests(t *testing.T) {
	c := cluster.Start(t)
	// A server-side dry run cannot see a namespace it would create.
	if out, err := c.Kubectl("apply", "-f", "../../manifests/namespace.yaml"); err != nil {
		t.Fatalf("namespace: %v\n%s", err, out)
	}
	out, err := c.Kubectl("apply", "--dry-run=server", "-k", "../../manifests")
	if err != nil {
		t.Fatalf("kubectl apply -k manifests: %v\n%s", err, out)
	}
	for _, want := range []string{
		"namespace/strata", "serviceaccount/strata-agent", "clusterrole.rbac.authorization.k8s.io/strata-agent",
		"clusterrolebinding.rbac.authorization.k8s.io/strata-agent", "configmap/strata-agent", "daemonset.apps/strata-agent",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("%s not applied:\n%s", want, out)
		}
	}
}
