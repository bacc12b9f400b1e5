package kube_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stratanet/strata/e2e/cluster"
	"github.com/stratanet/strata/e2e/harness"
)

// TestHTTPWorkloads: HTTP golden signals carry workload names at both ends,
// including requests made the moment the client pods start, before the
// API server has their addresses.
func TestHTTPWorkloads(t *testing.T) {
	c := cluster.Start(t)
	agent := harness.StartAgent(t, filepath.Join(bin, "strata-agent"), "--config", roomyBudgets(t),
		"--kubernetes=on", "--kubeconfig", c.Kubeconfig, "--sweep-interval", "1s", "--http=on")
	c.Apply(fmt.Sprintf(`
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: api, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: api}}
  template:
    metadata: {labels: {app: api}}
    spec:
      containers:
      - {name: api, image: local/httpserver, command: [%q, "-listen", ":8080"]}
---
apiVersion: v1
kind: Service
metadata: {name: api, namespace: shop}
spec:
  selector: {app: api}
  ports: [{port: 80, targetPort: 8080}]
`, filepath.Join(bin, "httpserver")))
	c.WaitRunning("shop", "app=api", 2)
	svc, err := c.Client.CoreV1().Services("shop").Get(context.Background(), "api", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
      - {name: web, image: local/httpclient, command: ["sh", "-c", "%s -url http://%s/api/users/42 -n 7; exec sleep 100000"]}
`, filepath.Join(bin, "httpclient"), svc.Spec.ClusterIP))
	c.WaitRunning("shop", "app=web", 2)

	req := labels{"source_namespace": "shop", "source_workload": "web", "destination_namespace": "shop",
		"destination_workload": "api", "destination_service": "api", "method": "GET", "status_code": "200", "route": "/api/users/{id}"}
	agent.Expect(t, "strata_http_client_request_duration_seconds", req.With("reporter", "client").With("destination_port", "80"), 14, 0)
	agent.Expect(t, "strata_http_server_request_duration_seconds", req.With("reporter", "server").With("destination_port", "8080"), 14, 0)
	agent.Expect(t, "strata_tcp_connections_total", labels{"source_namespace": "shop", "source_workload": "web",
		"destination_workload": "api", "reporter": "client", "result": "success"}, 2, 0)
}
