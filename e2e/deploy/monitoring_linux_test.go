package deploy_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stratanet/strata/e2e/cluster"
)

// TestMonitoringComponent: manifests with the optional Prometheus
// Operator component pass a server-side dry run against the operator's
// own CRDs (a pinned copy in testdata), so a field the schema does not
// have fails here rather than in a user's cluster.
func TestMonitoringComponent(t *testing.T) {
	c := cluster.Start(t)
	crds, _ := filepath.Glob("testdata/prometheus-operator/monitoring.coreos.com_*.yaml")
	if len(crds) != 2 {
		t.Fatalf("%d vendored CRDs, want 2 (PodMonitor, PrometheusRule)", len(crds))
	}
	for _, crd := range crds {
		if out, err := c.Kubectl("apply", "--server-side", "-f", crd); err != nil {
			t.Fatalf("apply %s: %v\n%s", crd, err, out)
		}
	}
	if out, err := c.Kubectl("wait", "--for=condition=Established", "--timeout=30s",
		"crd/podmonitors.monitoring.coreos.com", "crd/prometheusrules.monitoring.coreos.com"); err != nil {
		t.Fatalf("CRDs not established: %v\n%s", err, out)
	}

	// A user's kustomization: the manifests plus the component.
	dir := t.TempDir()
	abs, _ := filepath.Abs(manifests)
	rel, _ := filepath.Rel(dir, abs)
	os.WriteFile(filepath.Join(dir, "kustomization.yaml"), []byte("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\n"+
		"resources: ["+rel+"]\ncomponents: ["+rel+"/components/monitoring]\n"), 0o644)
	rendered, err := exec.Command(kubectl(t), "kustomize", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, rendered)
	}
	// A server-side dry run cannot see a namespace it would create.
	if out, err := c.Kubectl("apply", "-f", manifests+"/namespace.yaml"); err != nil {
		t.Fatalf("namespace: %v\n%s", err, out)
	}
	dryRun := func(y string) (string, error) {
		cmd := exec.Command(kubectl(t), "--kubeconfig", c.Kubeconfig, "apply", "--dry-run=server", "--validate=strict", "-f", "-")
		cmd.Stdin = strings.NewReader(y)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	out, err := dryRun(string(rendered))
	if err != nil {
		t.Fatalf("server-side dry run: %v\n%s", err, out)
	}
	if !strings.Contains(out, "podmonitor.monitoring.coreos.com/strata-agent created (server dry run)") {
		t.Errorf("PodMonitor not applied:\n%s", out)
	}
	if !strings.Contains(out, "prometheusrule.monitoring.coreos.com/strata created (server dry run)") {
		t.Errorf("PrometheusRule not applied:\n%s", out)
	}
	if n := strings.Count(out, "(server dry run)"); n != 8 {
		t.Errorf("%d objects applied, want 8 (the six of manifests/, the PodMonitor and the PrometheusRule):\n%s", n, out)
	}

	// The check has teeth: a field the CRD does not define is refused.
	bad := strings.Replace(string(rendered), "scrapeTimeout:", "scrapeTimeoutt:", 1)
	if out, err := dryRun(bad); err == nil || !strings.Contains(out, "scrapeTimeoutt") {
		t.Errorf("a PodMonitor with an unknown field passed: %v\n%s", err, out)
	}
}
