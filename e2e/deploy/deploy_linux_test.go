// Package deploy_test runs the agent as it ships: the DaemonSet pod from
// `kubectl kustomize manifests/`, in the image `make image` built, as a
// real container (podman, runc) with exactly the pod's args, env, mounts,
// hostPID, network mode and capabilities, against a real API server with
// its ServiceAccount's token and RBAC enforced (e2e/cluster).
package deploy_test

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratanet/strata/e2e/cluster"
	"github.com/stratanet/strata/e2e/harness"
)

var bin string

func TestMain(m *testing.M) {
	harness.Main(m, &bin, map[string]string{
		"tcpserver": "../cmd/tcpserver",
		"tcpclient": "../cmd/tcpclient",
	})
}

type labels = harness.Labels

const (
	manifests = "../../manifests"
	archive   = "../../bin/strata-agent-image.tar"
)

// podmanDir is where podman keeps images and containers: make image's.
func podmanDir() string {
	if d := os.Getenv("PODMAN_DIR"); d != "" {
		return d
	}
	return "/var/cache/strata/podman"
}

func kubectl(t *testing.T) string {
	t.Helper()
	k := filepath.Join(harness.ToolsDir(), "kubectl")
	if _, err := os.Stat(k); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("kubectl not built: make tools")
		}
		t.Skip("kubectl not built: make tools")
	}
	return k
}

// TestRenderedManifests: what `kubectl apply -k manifests/` applies runs
// nothing privileged and names a released image, never :latest.
func TestRenderedManifests(t *testing.T) {
	out, err := exec.Command(kubectl(t), "kustomize", manifests).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v\n%s", err, out)
	}
	y := string(out)
	for _, bad := range []string{"privileged: true", ":latest"} {
		if strings.Contains(y, bad) {
			t.Errorf("rendered manifests contain %q", bad)
		}
	}
	if n := strings.Count(y, "image: ghcr.io/stratanet/strata-agent:v"); n != 1 {
		t.Errorf("%d images ghcr.io/stratanet/strata-agent:v<version>, want 1:\n%s", n, y)
	}
}

// overlay is what a user's own kustomization over manifests/ would be:
// their registry and tag (here: the image make image built), and their
// settings (a free metrics port on this shared machine, HTTP on so that
// every probe shows its mode, label budgets no other test fills).
func overlay(t *testing.T, image, port string) string {
	name, tag, _ := strings.Cut(image, ":")
	abs, err := filepath.Abs(manifests)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rel, err := filepath.Rel(dir, abs) // kustomize takes no absolute paths
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"kustomization.yaml": fmt.Sprintf(`apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources: [%s]
images:
  - {name: ghcr.io/stratanet/strata-agent, newName: %s, newTag: %q}
patches:
  - path: config.yaml
`, rel, name, tag),
		"config.yaml": fmt.Sprintf(`apiVersion: v1
kind: ConfigMap
metadata: {name: strata-agent, namespace: strata}
data:
  strata.yaml: |
    kubernetes: "on"
    metrics_addr: ":%s"
    http: "on"
    sweep_interval: 1s
    label_budgets: {qname: 1000000, destination_workload: 1000000}
`, port),
	}
	for f, s := range files {
		if err := os.WriteFile(filepath.Join(dir, f), []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out, err := exec.Command(kubectl(t), "kustomize", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("kubectl kustomize overlay: %v\n%s", err, out)
	}
	return string(out)
}

// TestDaemonSetInAContainer: the shipped DaemonSet's pod, run by the
// kubelet through podman, names a frontend -> backend pair with exact
// counts at both ends and a host-network process as host.
func TestDaemonSetInAContainer(t *testing.T) {
	c := cluster.Start(t)
	pm := cluster.NewPodman(t, podmanDir())
	image := pm.Load(archive)
	_, port, _ := strings.Cut(harness.FreeAddr(t), ":")
	rendered := overlay(t, image, port)
	c.RunContainers(pm)
	nodeIP := c.NodeNetwork() // before the agent, as on a node

	c.Apply(rendered)
	pods := c.WaitRunning("strata", "app.kubernetes.io/name=strata-agent", 1)
	pid := c.ContainerPID(pods[0])
	if pid == 0 {
		t.Fatalf("the DaemonSet's pod %s runs no container", pods[0].Name)
	}
	checkConfinement(t, pid)

	addr := "127.0.0.1:" + port
	waitReady(t, addr)
	agent := &harness.Agent{Addr: addr}
	mfs, err := agent.Scrape()
	if err != nil {
		t.Fatal(err)
	}
	for _, probe := range []string{"tcp_state", "tcp_sweep", "tcp_retransmit", "tcp_reset", "http", "dns"} {
		ms := harness.Series(mfs, "strata_agent_probe_info", labels{"probe": probe})
		if len(ms) != 1 {
			t.Errorf("probe %s: %d strata_agent_probe_info series, want 1", probe, len(ms))
			continue
		}
		for _, l := range ms[0].GetLabel() {
			if l.GetName() == "mode" && l.GetValue() == "disabled" {
				t.Errorf("probe %s disabled in the container", probe)
			}
			// HTTP reaches the node's cgroup root through the mount, and
			// DNS rides its packet programs (HTTP pays the hook anyway).
			want := map[string]string{"http": "cgroup_skb", "dns": "cgroup_skb"}[probe]
			if want != "" && l.GetName() == "mode" && l.GetValue() != want {
				t.Errorf("%s in mode %s in the container, want %s", probe, l.GetValue(), want)
			}
		}
	}
	_, tag, _ := strings.Cut(image, ":")
	if _, ok := harness.ValueIn(t, mfs, "strata_agent_build_info", labels{"version": tag}); !ok {
		t.Errorf("no strata_agent_build_info{version=%q}: the image's binary is not the one make image stamped", tag)
	}

	// RBAC is enforced: the agent's account reads what it watches, nothing else.
	for q, want := range map[string]string{"list pods": "yes", "watch endpointslices.discovery.k8s.io": "yes",
		"list deployments.apps": "no", "get secrets": "no", "list nodes": "no"} {
		out, _ := c.Kubectl(append([]string{"auth", "can-i", "--as=system:serviceaccount:strata:strata-agent"}, strings.Fields(q)...)...)
		lines := strings.Split(strings.TrimSpace(out), "\n") // after any warning
		if got := lines[len(lines)-1]; got != want {
			t.Errorf("can the agent %s? %q, want %s", q, out, want)
		}
	}

	// The workload-identity scenario, with the agent in its container.
	backends, vip := c.Backend("shop", filepath.Join(bin, "tcpserver"))
	c.Clients("shop", "frontend", 2, filepath.Join(bin, "tcpclient"), vip+":80", 5, "")

	pair := labels{"source_namespace": "shop", "source_workload": "frontend",
		"destination_namespace": "shop", "destination_workload": "backend", "destination_service": "backend"}
	client := pair.With("reporter", "client").With("destination_port", "80")
	server := pair.With("reporter", "server").With("destination_port", "8080")
	agent.Expect(t, "strata_tcp_connections_total", client.With("result", "success"), 10, 0)
	agent.Expect(t, "strata_tcp_connections_total", server.With("result", "success"), 10, 0)
	agent.Expect(t, "strata_tcp_sent_bytes_total", client, 1000, 0)
	agent.Expect(t, "strata_tcp_received_bytes_total", client, 2000, 0)
	agent.Expect(t, "strata_tcp_sent_bytes_total", server, 2000, 0)
	agent.Expect(t, "strata_tcp_received_bytes_total", server, 1000, 0)

	// A process on the node's own network (a kubelet, an sshd): no pod's.
	target := backends[0].Status.PodIP + ":8080"
	if out, err := exec.Command(filepath.Join(bin, "tcpclient"), "-connect", target, "-count", "3",
		"-send", "100", "-expect", "200").CombinedOutput(); err != nil {
		t.Fatalf("host process -> %s (node address %s): %v\n%s", target, nodeIP, err, out)
	}
	host := labels{"source_namespace": "", "source_workload": "host",
		"destination_namespace": "shop", "destination_workload": "backend", "destination_port": "8080", "result": "success"}
	agent.Expect(t, "strata_tcp_connections_total", host.With("reporter", "client"), 3, 0)
	agent.Expect(t, "strata_tcp_connections_total", host.With("reporter", "server"), 3, 2*time.Second)
}

// checkConfinement reads what the kernel says of the agent's process:
// exactly the two capabilities, no_new_privs, a seccomp filter.
func checkConfinement(t *testing.T, pid int) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	status := map[string]string{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok {
			status[k] = strings.TrimSpace(v)
		}
	}
	const sysPtrace, sysAdmin = 19, 21
	want := fmt.Sprintf("%016x", uint64(1)<<sysPtrace|uint64(1)<<sysAdmin)
	for _, set := range []string{"CapEff", "CapPrm", "CapBnd"} {
		if status[set] != want {
			t.Errorf("%s = %s, want %s (CAP_SYS_ADMIN and CAP_SYS_PTRACE only)", set, status[set], want)
		}
	}
	for k, want := range map[string]string{"CapInh": "0000000000000000", "CapAmb": "0000000000000000",
		"NoNewPrivs": "1", "Seccomp": "2", "Uid": "0\t0\t0\t0"} {
		if status[k] != want {
			t.Errorf("%s = %q, want %q", k, status[k], want)
		}
	}
	// readOnlyRootFilesystem: the container's / is mounted read-only.
	if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/mountinfo", pid)); err != nil {
		t.Error(err)
	} else {
		root := ""
		for _, line := range strings.Split(string(b), "\n") {
			if f := strings.Fields(line); len(f) > 5 && f[4] == "/" {
				root = f[5]
			}
		}
		if !strings.HasPrefix(root, "ro,") {
			t.Errorf("container's / mounted %q, want read-only", root)
		}
	}
	// hostPID and hostNetwork: the node's namespaces, which are this
	// test's (PID 1's cannot be read on every machine: a sandbox's init).
	for _, ns := range []string{"pid", "net"} {
		agent, err := os.Readlink(fmt.Sprintf("/proc/%d/ns/%s", pid, ns))
		node, _ := os.Readlink("/proc/self/ns/" + ns)
		if err != nil || agent != node {
			t.Errorf("agent's %s namespace %s (%v), the node's %s", ns, agent, err, node)
		}
	}
}

// waitReady waits for /readyz (probes loaded, informers synced).
func waitReady(t *testing.T, addr string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	var err error
	for time.Now().Before(deadline) {
		if err = harness.Ready(addr); err == nil {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("agent not ready within 60s: %v", err)
}
