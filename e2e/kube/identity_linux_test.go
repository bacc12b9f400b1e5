package kube_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stratanet/strata/e2e/cluster"
	"github.com/stratanet/strata/e2e/harness"
)

// TestWorkloadIdentity: a frontend Deployment calling a backend Service and
// api.twilio.com is counted under their workload, Service and DNS names at
// both ends, never under pod addresses. The clients connect the moment
// their pods start, before the API server has their addresses: the agent
// names them late rather than wrongly.
func TestWorkloadIdentity(t *testing.T) {
	c := cluster.Start(t)
	agent := harness.StartAgent(t, filepath.Join(bin, "strata-agent"), "--config", roomyBudgets(t),
		"--kubernetes=on", "--kubeconfig", c.Kubeconfig, "--sweep-interval", "1s")
	c.External("api.twilio.com", "10.250.1.10", filepath.Join(bin, "tcpserver"), "-listen", ":443", "-request", "10", "-reply", "30")
	_, vip := c.Backend("shop", filepath.Join(bin, "tcpserver"))
	c.Clients("shop", "frontend", 2, filepath.Join(bin, "tcpclient"), vip+":80", 5,
		filepath.Join(bin, "tcpclient")+" -connect api.twilio.com:443 -count 3 -send 10 -expect 30; "+
			filepath.Join(bin, "dnsquery")+" nosuch.example.com")

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

	twilio := labels{"source_namespace": "shop", "source_workload": "frontend", "destination_namespace": "",
		"destination_workload": "api.twilio.com", "destination_service": "", "destination_port": "443", "reporter": "client"}
	agent.Expect(t, "strata_tcp_connections_total", twilio.With("result", "success"), 6, 0)
	agent.Expect(t, "strata_tcp_sent_bytes_total", twilio, 60, 0)
	agent.Expect(t, "strata_tcp_received_bytes_total", twilio, 180, 0)

	lookups := labels{"source_namespace": "shop", "source_workload": "frontend", "qtype": "A"}
	agent.Expect(t, "strata_dns_requests_total", lookups.With("qname", "api.twilio.com").With("rcode", "NOERROR"), 6, 0)
	agent.Expect(t, "strata_dns_requests_total", lookups.With("qname", "nosuch.example.com").With("rcode", "NXDOMAIN"), 2, 2*time.Second)

	mfs, err := agent.Scrape()
	if err != nil {
		t.Fatal(err)
	}
	for name, mf := range mfs {
		if !strings.HasPrefix(name, "strata_tcp_") {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if strings.HasPrefix(l.GetValue(), "10.244.") || strings.HasPrefix(l.GetValue(), "10.96.") {
					t.Errorf("%s has an address for a name: %s=%s", name, l.GetName(), l.GetValue())
				}
			}
		}
	}
}

// server is a Deployment of one tcpserver on 8080.
func server(c *cluster.Cluster, ns, name string) corev1.Pod {
	c.Apply(fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  replicas: 1
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      containers:
      - {name: server, image: local/tcpserver, command: [%[3]q, "-listen", ":8080", "-request", "100", "-reply", "200"]}
`, ns, name, filepath.Join(bin, "tcpserver")))
	return c.WaitRunning(ns, "app="+name, 1)[0]
}

// call runs a Job whose pod opens count connections to addr, and waits
// for it to succeed.
func call(t *testing.T, c *cluster.Cluster, ns, name, addr string, count int) {
	t.Helper()
	c.Apply(fmt.Sprintf(`
apiVersion: batch/v1
kind: Job
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: client, image: local/tcpclient, command: [%[3]q, "-connect", %[4]q, "-count", "%[5]d", "-send", "100", "-expect", "200"]}
`, ns, name, filepath.Join(bin, "tcpclient"), addr, count))
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		j, err := c.Client.BatchV1().Jobs(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && j.Status.Succeeded == 1 {
			return
		}
		if err == nil && j.Status.Failed > 0 {
			t.Fatalf("job %s failed: its connections to %s did not complete", name, addr)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("job %s did not succeed within 60s", name)
}

// TestReusedPodAddress: a deleted pod's address taken by a pod of another
// workload names the new workload for the traffic that follows, the old
// one keeps what it had, and the deleted workload's series go after the
// grace period.
func TestReusedPodAddress(t *testing.T) {
	c := cluster.Start(t)
	agent := harness.StartAgent(t, filepath.Join(bin, "strata-agent"), "--kubernetes=on", "--kubeconfig", c.Kubeconfig,
		"--sweep-interval", "1s", "--deleted-workload-grace", "5s")
	c.Apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
	old := server(c, "shop", "old")
	addr := old.Status.PodIP + ":8080"
	call(t, c, "shop", "caller-1", addr, 3)

	to := func(caller, dest, reporter, port string) labels {
		return labels{"source_namespace": "shop", "source_workload": caller, "destination_namespace": "shop",
			"destination_workload": dest, "reporter": reporter, "destination_port": port, "result": "success"}
	}
	agent.Expect(t, "strata_tcp_connections_total", to("caller-1", "old", "client", "8080"), 3, 0)
	agent.Expect(t, "strata_tcp_connections_total", to("caller-1", "old", "server", "8080"), 3, 0)

	if out, err := c.Kubectl("delete", "deployment", "-n", "shop", "old", "--wait=true", "--timeout=30s"); err != nil {
		t.Fatalf("kubectl delete: %v\n%s", err, out)
	}
	waitGone(t, c, "shop", "app=old")
	reused := server(c, "shop", "new")
	if reused.Status.PodIP != old.Status.PodIP {
		t.Fatalf("the new pod has %s, not the deleted pod's %s: nothing to test", reused.Status.PodIP, old.Status.PodIP)
	}
	call(t, c, "shop", "caller-2", addr, 4)
	agent.Expect(t, "strata_tcp_connections_total", to("caller-2", "new", "client", "8080"), 4, 0)
	agent.Expect(t, "strata_tcp_connections_total", to("caller-2", "new", "server", "8080"), 4, 0)
	if v, ok := agent.Value(t, "strata_tcp_connections_total", to("caller-2", "old", "client", "8080")); ok {
		t.Errorf("traffic to the reused address counted for the deleted workload: %v", v)
	}

	// The deleted Deployment's series go: 5 s of grace, looked for every 2.5 s.
	deadline := time.Now().Add(20 * time.Second)
	for {
		mfs, err := agent.Scrape()
		if err != nil {
			t.Fatal(err)
		}
		if len(harness.Series(mfs, "strata_tcp_connections_total", labels{"destination_workload": "old"})) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("series of the deleted Deployment old still exposed 20 s after it went")
		}
		time.Sleep(500 * time.Millisecond)
	}
	agent.Expect(t, "strata_tcp_connections_total", to("caller-2", "new", "client", "8080"), 4, 0)
}

// waitGone waits until no pod matches selector in ns: the garbage collector
// deletes a Deployment's pods after it, and the kubelet then frees their
// addresses.
func waitGone(t *testing.T, c *cluster.Cluster, ns, selector string) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		pods, err := c.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		if err == nil && len(pods.Items) == 0 {
			return
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Fatalf("pods %s in %s still there after 60s", selector, ns)
}

// roomyBudgets is a config file whose name budgets no other test can fill:
// the agent sees the whole machine, and go test runs packages side by side
// (e2e/dns floods the qname budget on purpose).
func roomyBudgets(t *testing.T) string {
	conf := filepath.Join(t.TempDir(), "strata.yaml")
	if err := os.WriteFile(conf, []byte("label_budgets: {qname: 1000000, destination_workload: 1000000}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return conf
}
