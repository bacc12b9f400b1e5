package cluster

import (
	"context"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Backend applies namespace ns and a Deployment "backend" of two
// tcpservers (binary tcpserver; each reads 100 bytes and answers 200)
// behind a Service "backend" (80 -> 8080), waits for both pods, and
// returns them with the Service's ClusterIP once the node's Service rules
// lead to both.
func (c *Cluster) Backend(ns, tcpserver string) ([]corev1.Pod, string) {
	c.t.Helper()
	c.Apply(fmt.Sprintf(`
apiVersion: v1
kind: Namespace
metadata: {name: %[1]s}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend, namespace: %[1]s}
spec:
  replicas: 2
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend}}
    spec:
      containers:
      - {name: server, image: local/tcpserver, command: [%[2]q, "-listen", ":8080", "-request", "100", "-reply", "200"]}
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: %[1]s}
spec:
  selector: {app: backend}
  ports: [{port: 80, targetPort: 8080}]
`, ns, tcpserver))
	pods := c.WaitRunning(ns, "app=backend", 2)
	c.WaitEndpoints(ns, "backend", 2)
	svc, err := c.Client.CoreV1().Services(ns).Get(context.Background(), "backend", metav1.GetOptions{})
	if err != nil {
		c.t.Fatalf("service backend: %v", err)
	}
	return pods, svc.Spec.ClusterIP
}

// Clients applies a Deployment of n pods, each opening count connections
// to addr with tcpclient (100 bytes sent, 200 received on each) as soon as
// it starts, then running then (a shell command, or ""), then idling, and
// waits for them.
func (c *Cluster) Clients(ns, name string, n int, tcpclient, addr string, count int, then string) {
	c.t.Helper()
	if then == "" {
		then = ":"
	}
	c.Apply(fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  replicas: %[3]d
  selector: {matchLabels: {app: %[2]s}}
  template:
    metadata: {labels: {app: %[2]s}}
    spec:
      containers:
      - name: client
        image: local/tcpclient
        command: ["sh", "-c", "%[4]s -connect %[5]s -count %[6]d -send 100 -expect 200; %[7]s; exec sleep 100000"]
`, ns, name, n, tcpclient, addr, count, then))
	c.WaitRunning(ns, "app="+name, n)
}

// WaitEndpoints waits until the node's Service rules (the kubelet's view of
// the EndpointSlices) lead to n ready endpoints of the Service: a pod
// started after that reaches them from its first connection. On a loaded
// control plane the EndpointSlice controller lags behind the pods by
// seconds (e2e/scale).
func (c *Cluster) WaitEndpoints(ns, svc string, n int) {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		c.mu.Lock()
		store := c.sliceStore
		c.mu.Unlock()
		ready := 0
		if store != nil {
			for _, obj := range store.List() {
				sl := obj.(*discoveryv1.EndpointSlice)
				if sl.Namespace != ns || sl.Labels[discoveryv1.LabelServiceName] != svc {
					continue
				}
				for _, e := range sl.Endpoints {
					if e.Conditions.Ready == nil || *e.Conditions.Ready {
						ready += len(e.Addresses)
					}
				}
			}
		}
		if ready == n {
			return
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("Service %s/%s: %d ready endpoints, want %d", ns, svc, ready, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
