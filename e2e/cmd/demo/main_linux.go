// Command demo runs the end-to-end test cluster (e2e/cluster) outside any
// test, with a small shop in it and the agent watching: a frontend
// Deployment (2 replicas) calling the backend Service and api.twilio.com
// (an external host the cluster's DNS names) every second. It prints where
// to look and runs until Ctrl-C, then removes everything it made.
//
//	demo [--agent bin/strata-agent] [--metrics-addr 127.0.0.1:9810] [-- more agent flags]
//
// It needs root, etcd and dnsmasq (make deps) and the control plane (make
// tools); make demo does all of that.
package main

import (
	"flag"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"runtime"
	"sync"
	"syscall"
	"time"

	"github.com/stratanet/strata/e2e/cluster"
	"github.com/stratanet/strata/e2e/harness"
)

// The backend Service's ClusterIP, fixed so that the frontend's command can
// name it (the cluster's DNS knows no Services).
const backendIP = "10.96.10.10"

func main() {
	agent := flag.String("agent", "bin/strata-agent", "the agent binary")
	addr := flag.String("metrics-addr", "127.0.0.1:9810", "where the agent serves /metrics")
	flag.Parse()
	agentFlags := flag.Args()

	r := newRunner()
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)

	var d *demo
	ready := make(chan struct{})
	go func() { // the runner's Fatalf ends this goroutine, as it would a test
		d = setUp(r, *agent, *addr, agentFlags)
		close(ready)
	}()
	select {
	case <-ready:
	case msg := <-r.fatal:
		r.tearDown()
		fmt.Fprintf(os.Stderr, "demo: %s\n", msg)
		os.Exit(1)
	case <-sig:
		// Mid-start, pieces are still being made: let the start finish
		// or fail (its steps are bounded), then remove everything.
		fmt.Println("\nstopping once the start finishes or fails (Ctrl-C again: now)...")
		select {
		case <-ready:
		case <-r.fatal:
		case <-sig:
		}
		r.tearDown()
		os.Exit(130)
	}
	d.banner()

	code := 0
	select {
	case <-sig:
		fmt.Println("\nstopping...")
	case msg := <-r.fatal:
		fmt.Fprintf(os.Stderr, "demo: %s\n", msg)
		code = 1
	case <-d.agentDone:
		fmt.Fprintf(os.Stderr, "demo: the agent exited: %v\nits log:\n%s", d.agentErr, d.agentLog())
		code = 1
	}
	d.stopAgent()
	r.tearDown()
	if code == 0 {
		fmt.Println("stopped: the cluster, its namespaces, processes and files are gone")
	}
	os.Exit(code)
}

type demo struct {
	c         *cluster.Cluster
	addr      string
	dir       string
	agent     *exec.Cmd
	agentDone chan struct{}
	agentErr  error
}

func setUp(r *runner, agent, addr string, agentFlags []string) *demo {
	if _, err := os.Stat(agent); err != nil {
		r.Fatalf("%s: %v (make build)", agent, err)
	}
	d := &demo{addr: addr, dir: r.TempDir()}
	fmt.Println("building the shop's programs...")
	tools := map[string]string{}
	for _, name := range []string{"httpserver", "httpclient"} {
		tools[name] = "github.com/stratanet/strata/e2e/cmd/" + name
	}
	if err := harness.Build(d.dir, tools); err != nil {
		r.Fatalf("%v", err)
	}
	fmt.Println("starting the cluster (etcd, kube-apiserver, kube-controller-manager, a kubelet, DNS)...")
	c := cluster.Start(r)
	d.c = c
	c.External("api.twilio.com", "10.250.1.10", filepath.Join(d.dir, "httpserver"), "-listen", ":80").WaitListen(80)
	fmt.Println("applying the shop: namespace shop, backend (Deployment + Service), frontend (2 replicas)...")
	c.Apply(shop(d.dir))
	c.WaitRunning("shop", "app=backend", 2)
	c.WaitRunning("shop", "app=frontend", 2)

	fmt.Println("starting the agent...")
	log, err := os.Create(filepath.Join(d.dir, "agent.log"))
	if err != nil {
		r.Fatalf("%v", err)
	}
	args := append([]string{"--kubernetes=on", "--kubeconfig", c.Kubeconfig, "--metrics-addr", addr, "--sweep-interval", "2s"}, agentFlags...)
	d.agent = exec.Command(agent, args...)
	d.agent.Stdout, d.agent.Stderr = log, log
	d.agent.SysProcAttr = &syscall.SysProcAttr{Setpgid: true} // Ctrl-C is for the demo, which stops it
	if err := d.agent.Start(); err != nil {
		r.Fatalf("start %s: %v", agent, err)
	}
	d.agentDone = make(chan struct{})
	go func() { d.agentErr = d.agent.Wait(); close(d.agentDone) }()
	deadline := time.Now().Add(60 * time.Second)
	for !d.ready() {
		select {
		case <-d.agentDone:
			r.quit("the agent exited: %v\nits log:\n%s", d.agentErr, d.agentLog())
		case <-time.After(200 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.stopAgent()
			r.quit("the agent was not ready (http://%s/readyz) within 60s\nits log:\n%s", addr, d.agentLog())
		}
	}
	return d
}

// ready is /readyz: probes loaded and informers synced (the agent serves
// /metrics before that).
func (d *demo) ready() bool {
	client := &http.Client{Timeout: time.Second}
	resp, err := client.Get("http://" + d.addr + "/readyz")
	if err != nil {
		return false
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

func (d *demo) agentLog() string {
	b, _ := os.ReadFile(filepath.Join(d.dir, "agent.log"))
	return string(b)
}

// stopAgent asks the agent to stop and waits for it (10s, then kills it).
func (d *demo) stopAgent() {
	if d == nil || d.agent == nil {
		return
	}
	d.agent.Process.Signal(syscall.SIGTERM)
	select {
	case <-d.agentDone:
	case <-time.After(10 * time.Second):
		d.agent.Process.Kill()
		<-d.agentDone
	}
}

func (d *demo) banner() {
	url := "http://" + d.addr + "/metrics"
	kubectl := filepath.Join(harness.ToolsDir(), "kubectl")
	fmt.Printf(`
Strata demo is running. Ctrl-C stops it and removes everything.

  shop/frontend (2 pods) -> shop/backend Service %s:80 (2 pods), and -> api.twilio.com (%s, external)
  every second; the cluster's DNS (%s) names api.twilio.com.

  metrics:     %s
  agent log:   %s
  kubeconfig:  %s

Try:
  curl -s %s | grep strata_tcp_connections_total | grep 'source_workload="frontend"'
  curl -s %s | grep strata_tcp_sent_bytes_total | grep 'destination_workload="backend"'
  curl -s %s | grep strata_dns_requests_total | grep 'qname="api.twilio.com"'
  %s --kubeconfig %s get pods -A -o wide
`, backendIP, "10.250.1.10", cluster.DNSServer, url, filepath.Join(d.dir, "agent.log"), d.c.Kubeconfig,
		url, url, url, kubectl, d.c.Kubeconfig)
}

// shop is the sample application: a backend behind a Service and a
// frontend that calls it and api.twilio.com every second.
func shop(bin string) string {
	loop := fmt.Sprintf("while :; do %[1]s -url http://%[2]s/api/cart -n 3; %[1]s -url http://api.twilio.com/2010-04-01/Messages.json; sleep 1; done",
		filepath.Join(bin, "httpclient"), backendIP)
	return fmt.Sprintf(`
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: backend, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: backend}}
  template:
    metadata: {labels: {app: backend}}
    spec:
      containers:
      - name: backend
        image: local/httpserver
        command: [%q, "-listen", ":8080"]
---
apiVersion: v1
kind: Service
metadata: {name: backend, namespace: shop}
spec:
  clusterIP: %s
  selector: {app: backend}
  ports: [{name: http, port: 80, targetPort: 8080}]
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: frontend, namespace: shop}
spec:
  replicas: 2
  selector: {matchLabels: {app: frontend}}
  template:
    metadata: {labels: {app: frontend}}
    spec:
      containers:
      - name: frontend
        image: local/httpclient
        command: ["sh", "-c", %q]
`, filepath.Join(bin, "httpserver"), backendIP, loop)
}

// runner is what e2e/cluster needs of a test (cluster.T), for a program:
// Fatalf reports to main and ends the calling goroutine, as t.Fatalf does;
// cleanups run, newest first, when main tears down.
type runner struct {
	mu       sync.Mutex
	cleanups []func()
	failed   bool
	down     bool
	fatal    chan string
}

var _ cluster.T = (*runner)(nil)

func newRunner() *runner { return &runner{fatal: make(chan string, 1)} }

func (r *runner) Helper() {}

func (r *runner) Logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "demo: "+format+"\n", args...)
}

func (r *runner) Errorf(format string, args ...any) {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	r.Logf(format, args...)
}

func (r *runner) Fatalf(format string, args ...any) {
	r.mu.Lock()
	r.failed = true
	r.mu.Unlock()
	r.quit(format, args...)
}

// quit stops the demo for a reason that is not the cluster's (the agent
// failed): its logs are not shown.
func (r *runner) quit(format string, args ...any) {
	select {
	case r.fatal <- fmt.Sprintf(format, args...):
	default: // main already heard of one failure
	}
	runtime.Goexit()
}

// Skipf: what a test would skip for (no root, a tool not built) stops the
// demo.
func (r *runner) Skipf(format string, args ...any) { r.Fatalf(format, args...) }

func (r *runner) Failed() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

// Cleanup registers f; after tearDown began it runs at once, so nothing
// made late is left behind.
func (r *runner) Cleanup(f func()) {
	r.mu.Lock()
	if r.down {
		r.mu.Unlock()
		f()
		return
	}
	r.cleanups = append(r.cleanups, f)
	r.mu.Unlock()
}

func (r *runner) TempDir() string {
	dir, err := os.MkdirTemp("", "strata-demo-")
	if err != nil {
		r.Fatalf("%v", err)
	}
	r.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// tearDown runs the cleanups, newest first, each in a goroutine of its own
// so that a Fatalf inside one cannot end main.
func (r *runner) tearDown() {
	r.mu.Lock()
	r.down = true
	fs := r.cleanups
	r.cleanups = nil
	r.mu.Unlock()
	for i := len(fs) - 1; i >= 0; i-- {
		done := make(chan struct{})
		go func() { defer close(done); fs[i]() }()
		<-done
	}
}
