package cluster_test

import (
	"context"
	"encoding/json"
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stratanet/strata/e2e/cluster"
	"github.com/stratanet/strata/e2e/harness"
)

var bin string

func TestMain(m *testing.M) {
	harness.Main(m, &bin, map[string]string{
		"tcpserver": "../cmd/tcpserver",
		"tcpclient": "../cmd/tcpclient",
		"dnsquery":  "../cmd/dnsquery",
	})
}

// TestCluster: workloads applied with kubectl become pods the real
// controllers made, running in their own namespaces with their own
// addresses, listed in the Service's EndpointSlice, replaced when deleted.
func TestCluster(t *testing.T) {
	c := cluster.Start(t)
	c.Apply(fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend, namespace: default}
spec:
  replicas: 2
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend}}
    spec:
      containers:
      - name: server
        image: local/tcpserver
        command: [%q, "-listen", ":8080", "-request", "10", "-reply", "20"]
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: default}
spec:
  selector: {app: backend}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: default}
spec:
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: done
        image: local/true
        command: ["true"]
`, filepath.Join(bin, "tcpserver")))

	pods := c.WaitRunning("default", "app=backend", 2)
	var ips []string
	for _, p := range pods {
		ips = append(ips, p.Status.PodIP)
		owner := p.OwnerReferences
		if len(owner) != 1 || owner[0].Kind != "ReplicaSet" || !strings.HasPrefix(owner[0].Name, "backend-") {
			t.Errorf("pod %s owned by %v, want the Deployment's ReplicaSet", p.Name, owner)
		}
		if !strings.HasPrefix(p.Status.PodIP, "10.244.") {
			t.Errorf("pod IP %s outside 10.244.0.0/16", p.Status.PodIP)
		}
	}
	sort.Strings(ips)

	t.Run("pods answer on their addresses", func(t *testing.T) {
		probe := c.Lab.Host("probe", "10.244.200.1/16")
		for _, ip := range ips {
			out, err := probe.Run(filepath.Join(bin, "tcpclient"), "-connect", ip+":8080", "-send", "10", "-expect", "20")
			var r struct{ OK int }
			lines := strings.Split(strings.TrimSpace(out), "\n")
			if err != nil || json.Unmarshal([]byte(lines[len(lines)-1]), &r) != nil || r.OK != 1 {
				t.Fatalf("tcpclient to %s: %v %s", ip, err, out)
			}
		}
	})

	t.Run("the EndpointSlice lists both pods", func(t *testing.T) {
		eventually(t, 30*time.Second, func() (bool, string) {
			slices, err := c.Client.DiscoveryV1().EndpointSlices("default").List(context.Background(), metav1.ListOptions{LabelSelector: "kubernetes.io/service-name=backend"})
			if err != nil {
				return false, err.Error()
			}
			var got []string
			for _, s := range slices.Items {
				for _, e := range s.Endpoints {
					if e.Conditions.Ready != nil && *e.Conditions.Ready {
						got = append(got, e.Addresses...)
					}
				}
			}
			sort.Strings(got)
			return strings.Join(got, ",") == strings.Join(ips, ","), fmt.Sprint(got)
		})
	})

	t.Run("a Job's pod completes", func(t *testing.T) {
		eventually(t, 30*time.Second, func() (bool, string) {
			pods, _ := c.Client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "job-name=once"})
			if len(pods.Items) != 1 {
				return false, fmt.Sprint(len(pods.Items), " pods")
			}
			return pods.Items[0].Status.Phase == corev1.PodSucceeded, string(pods.Items[0].Status.Phase)
		})
	})

	t.Run("a pod reaches the Service's ClusterIP", func(t *testing.T) {
		svc, err := c.Client.CoreV1().Services("default").Get(context.Background(), "backend", metav1.GetOptions{})
		if err != nil || !strings.HasPrefix(svc.Spec.ClusterIP, "10.96.") {
			t.Fatalf("service: %v %v", svc, err)
		}
		c.Apply(fmt.Sprintf(`
apiVersion: batch/v1
kind: Job
metadata: {name: caller, namespace: default}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: client
        image: local/tcpclient
        command: [%q, "-connect", "%s:80", "-count", "4", "-send", "10", "-expect", "20"]
`, filepath.Join(bin, "tcpclient"), svc.Spec.ClusterIP))
		eventually(t, 30*time.Second, func() (bool, string) {
			pods, _ := c.Client.CoreV1().Pods("default").List(context.Background(), metav1.ListOptions{LabelSelector: "job-name=caller"})
			if len(pods.Items) != 1 {
				return false, fmt.Sprint(len(pods.Items), " pods")
			}
			phase := pods.Items[0].Status.Phase
			if phase == corev1.PodFailed {
				t.Fatal("the client's connections to the ClusterIP failed")
			}
			return phase == corev1.PodSucceeded, string(phase)
		})
	})

	t.Run("a deleted pod is replaced", func(t *testing.T) {
		if out, err := c.Kubectl("delete", "pod", pods[0].Name, "--wait=true", "--timeout=30s"); err != nil {
			t.Fatalf("kubectl delete: %v %s", err, out)
		}
		now := c.WaitRunning("default", "app=backend", 2)
		for _, p := range now {
			if p.UID == pods[0].UID {
				t.Fatal("the deleted pod still runs")
			}
		}
	})
}

func eventually(t *testing.T, within time.Duration, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}
