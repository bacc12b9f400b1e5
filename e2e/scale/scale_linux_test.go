// Package scale_test measures the agent in a large cluster: tens of
// thousands of pods, thousands of Services and their EndpointSlices in the
// real test API server, churning, while a few pods that the node really
// runs talk to each other. It is a benchmark (make bench-scale), not part
// of make test: building the cluster takes minutes.
package scale_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	coreinformers "k8s.io/client-go/informers/core/v1"
	discoveryinformers "k8s.io/client-go/informers/discovery/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/stratanet/strata/e2e/cluster"
	"github.com/stratanet/strata/e2e/harness"
)

var bin string

func TestMain(m *testing.M) {
	harness.Main(m, &bin, map[string]string{
		"strata-agent": "../../agent/cmd/strata-agent",
		"tcpserver":    "../cmd/tcpserver",
		"tcpclient":    "../cmd/tcpclient",
	})
}

const (
	// other is the Node the cluster's pods are bound to: no kubelet runs
	// them; this test writes their status as its kubelet would.
	other = "node-2"
	// perWorkload pods in each ReplicaSet, one Service selecting them.
	perWorkload = 5
	namespaces  = 20
)

func env(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// TestScale: the agent's memory with 0, a fifth of, and all of
// STRATA_SCALE_PODS pods (default 50 000; a Service and a ReplicaSet for
// every 5), then while STRATA_SCALE_CHURN pods a second (default 50) are
// deleted and replaced for STRATA_SCALE_CHURN_SECONDS (default 120); during
// the churn a frontend and a backend that the node runs talk through a
// Service and must be named exactly.
func TestScale(t *testing.T) {
	if os.Getenv("STRATA_SCALE") == "" {
		t.Skip("a benchmark of minutes: make bench-scale (STRATA_SCALE=1)")
	}
	total := env("STRATA_SCALE_PODS", 50000)
	churnRate := env("STRATA_SCALE_CHURN", 50)
	churnFor := time.Duration(env("STRATA_SCALE_CHURN_SECONDS", 120)) * time.Second

	c := cluster.Start(t)
	client := fastClient(t, c.Kubeconfig)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	addNode(t, client, other)
	n2 := startOtherNode(ctx, t, client)

	agentArgs := []string{"--kubernetes=on", "--kubeconfig", c.Kubeconfig, "--sweep-interval", "1s"}
	agent := harness.StartAgent(t, filepath.Join(bin, "strata-agent"), agentArgs...)
	agents := []*harness.Agent{agent}
	// A baseline agent (another build) beside it sees the same cluster at
	// the same moments: its figures are measured in the same run.
	if base := os.Getenv("STRATA_SCALE_BASELINE"); base != "" {
		agents = append(agents, harness.StartAgent(t, base, agentArgs...))
	}
	var rows []row
	rows = append(rows, measure(t, agents, "0 pods", 0)...)

	for i := 0; i < namespaces; i++ {
		if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: nsName(i)}}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	made := 0
	for _, target := range []int{total / 5, total} {
		start := time.Now()
		workloads(t, client, made/perWorkload, target/perWorkload)
		made = target
		n2.waitConverged(t, target, 20*time.Minute)
		t.Logf("%d pods, %d Services running with their EndpointSlices in %v", target, target/perWorkload, time.Since(start).Round(time.Second))
		time.Sleep(20 * time.Second) // the agent's informers drain their watches
		rows = append(rows, measure(t, agents, fmt.Sprintf("%d pods, %d Services", target, target/perWorkload), target)...)
	}

	// Churn: delete pods at random, the ReplicaSets replace them, this
	// test gives the new ones addresses. Meanwhile the named traffic.
	churnCtx, stopChurn := context.WithCancel(ctx)
	var deleted atomic.Int64
	peaks := make([]atomic.Int64, len(agents))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		churn(churnCtx, client, n2, churnRate, &deleted, agents, peaks)
	}()
	churnStart, created0 := time.Now(), n2.started.Load()
	_, vip := c.Backend("shop", filepath.Join(bin, "tcpserver"))
	c.Clients("shop", "frontend", 2, filepath.Join(bin, "tcpclient"), vip+":80", 5, "")
	pair := harness.Labels{"source_namespace": "shop", "source_workload": "frontend",
		"destination_namespace": "shop", "destination_workload": "backend", "destination_service": "backend"}
	client2 := pair.With("reporter", "client").With("destination_port", "80")
	server := pair.With("reporter", "server").With("destination_port", "8080")
	agent.Expect(t, "strata_tcp_connections_total", client2.With("result", "success"), 10, 0)
	agent.Expect(t, "strata_tcp_connections_total", server.With("result", "success"), 10, 0)
	agent.Expect(t, "strata_tcp_sent_bytes_total", client2, 1000, 0)
	agent.Expect(t, "strata_tcp_received_bytes_total", client2, 2000, 0)
	agent.Expect(t, "strata_tcp_sent_bytes_total", server, 2000, 0)
	agent.Expect(t, "strata_tcp_received_bytes_total", server, 1000, 0)
	if left := churnFor - time.Since(churnStart); left > 0 {
		time.Sleep(left)
	}
	stopChurn()
	wg.Wait()
	elapsed := time.Since(churnStart)
	replaced := n2.started.Load() - created0
	after := measure(t, agents, fmt.Sprintf("after %v of churn", elapsed.Round(time.Second)), total)
	for i := range after {
		after[i].peakRSS = max(after[i].peakRSS, peaks[i].Load())
	}
	rows = append(rows, after...)
	// Still exact after the churn: nothing counted twice or lost.
	agent.Expect(t, "strata_tcp_connections_total", client2.With("result", "success"), 10, 0)
	agent.Expect(t, "strata_tcp_connections_total", server.With("result", "success"), 10, 0)

	t.Logf("churn: %d pods deleted, %d replacements running, in %v: %.1f pods/s (asked %d/s)",
		deleted.Load(), replaced, elapsed.Round(time.Second), float64(deleted.Load())/elapsed.Seconds(), churnRate)
	t.Logf("%-9s %-30s %8s %9s %9s %13s %11s", "agent", "cluster", "RSS MiB", "peak MiB", "heap MiB", "heap+ MiB", "heap+/pod B")
	for _, r := range rows {
		base := rows[r.agent] // the same agent at 0 pods
		perPod := "-"
		if r.pods > 0 {
			perPod = fmt.Sprintf("%d", (r.heapInuse-base.heapInuse)/int64(r.pods))
		}
		t.Logf("%-9s %-30s %8.1f %9.1f %9.1f %13.1f %11s", []string{"this", "baseline"}[r.agent], r.what,
			mib(r.rss), mib(r.peakRSS), mib(r.heapInuse), mib(r.heapInuse-base.heapInuse), perPod)
	}
	for _, r := range rows {
		if r.agent == 0 && r.rss > 200<<20 {
			t.Errorf("%s: agent RSS %.1f MiB, target 200 MiB", r.what, mib(r.rss))
		}
	}
}

func mib(b int64) float64 { return float64(b) / (1 << 20) }

func nsName(i int) string { return fmt.Sprintf("scale-%02d", i) }

type row struct {
	agent               int // 0: this build, 1: the baseline
	what                string
	pods                int
	rss, peakRSS        int64
	heapInuse, heapSys  int64
	goroutines, objects int64
}

// measure reads each agent's RSS (/proc/PID/status VmRSS) and Go heap (its
// own go_memstats metrics) five times a second apart and keeps the last
// figures and the highest RSS.
func measure(t *testing.T, agents []*harness.Agent, what string, pods int) []row {
	t.Helper()
	rows := make([]row, len(agents))
	for i := range rows {
		rows[i] = row{agent: i, what: what, pods: pods}
	}
	for range 5 {
		time.Sleep(time.Second)
		for i, a := range agents {
			r := &rows[i]
			rss, err := a.RSS()
			if err != nil {
				t.Fatal(err)
			}
			r.rss, r.peakRSS = rss, max(r.peakRSS, rss)
			mfs, err := a.Scrape()
			if err != nil {
				t.Fatal(err)
			}
			get := func(name string) int64 {
				v, _ := harness.ValueIn(t, mfs, name, nil)
				return int64(v)
			}
			r.heapInuse, r.heapSys = get("go_memstats_heap_inuse_bytes"), get("go_memstats_heap_sys_bytes")
			r.objects, r.goroutines = get("go_memstats_heap_objects"), get("go_goroutines")
		}
	}
	for i, r := range rows {
		t.Logf("agent %d, %s: RSS %.1f MiB (peak %.1f; %s), heap in use %.1f MiB, heap objects %d, goroutines %d",
			r.agent, what, mib(r.rss), mib(r.peakRSS), rssParts(agents[i]), mib(r.heapInuse), r.objects, r.goroutines)
	}
	return rows
}

// rssParts says what the resident memory is: anonymous (the Go heap and
// stacks, BPF maps mapped in), file (the binary's text) and shared.
func rssParts(a *harness.Agent) string {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", a.Pid()))
	if err != nil {
		return err.Error()
	}
	var parts []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) == 3 && strings.HasPrefix(f[0], "Rss") {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			parts = append(parts, fmt.Sprintf("%s %.1f", strings.TrimSuffix(strings.TrimPrefix(f[0], "Rss"), ":"), mib(kb<<10)))
		}
	}
	return strings.Join(parts, ", ")
}

// fastClient talks protobuf at a rate the default (5/s) is far below.
func fastClient(t *testing.T, kubeconfig string) kubernetes.Interface {
	cfg, err := clientcmd.BuildConfigFromFlags("", kubeconfig)
	if err != nil {
		t.Fatal(err)
	}
	cfg.QPS, cfg.Burst = 2000, 4000
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return client
}

func addNode(t *testing.T, client kubernetes.Interface, name string) {
	n, err := client.CoreV1().Nodes().Create(context.Background(), &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(), Reason: "KubeletReady"}}
	if _, err := client.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// parallel runs f(i) for i in [from, to) on 32 goroutines.
func parallel(t *testing.T, from, to int, f func(i int) error) {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	var failed atomic.Value
	for w := 0; w < 32; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= to || failed.Load() != nil {
					return
				}
				if err := f(i); err != nil {
					failed.Store(err)
				}
			}
		}()
	}
	wg.Wait()
	if err := failed.Load(); err != nil {
		t.Fatal(err)
	}
}

// workloads creates workloads [from, to): each a ReplicaSet of perWorkload
// pods bound to the other node, and a Service selecting them. The pods
// look like an ordinary application's: labels, annotations, environment,
// resources, a probe.
func workloads(t *testing.T, client kubernetes.Interface, from, to int) {
	replicas := int32(perWorkload)
	parallel(t, from, to, func(i int) error {
		ns, name := nsName(i%namespaces), fmt.Sprintf("app-%05d", i)
		labels := map[string]string{"app": name, "app.kubernetes.io/part-of": "scale", "tier": "backend", "pod-template-hash": "5d8f7c9b6"}
		rs := &appsv1.ReplicaSet{
			ObjectMeta: metav1.ObjectMeta{Name: name + "-5d8f7c9b6", Namespace: ns, Labels: labels},
			Spec: appsv1.ReplicaSetSpec{
				Replicas: &replicas,
				Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}},
				Template: corev1.PodTemplateSpec{
					ObjectMeta: metav1.ObjectMeta{Labels: labels, Annotations: map[string]string{
						"prometheus.io/scrape": "true", "prometheus.io/port": "9090",
						"kubectl.kubernetes.io/restartedAt": "2026-12-01T10:00:00Z"}},
					Spec: corev1.PodSpec{
						NodeName: other,
						Containers: []corev1.Container{{
							Name: "app", Image: "registry.example.com/team/app:1.42.0",
							Args:  []string{"--listen=:8080", "--log-level=info"},
							Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {Name: "metrics", ContainerPort: 9090}},
							Env: []corev1.EnvVar{{Name: "APP_NAME", Value: name}, {Name: "LOG_FORMAT", Value: "json"},
								{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
								{Name: "POD_IP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}},
							Resources: corev1.ResourceRequirements{
								Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("128Mi")},
								Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("256Mi")}},
							ReadinessProbe: &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/healthz", Port: intstr.FromString("http")}}},
						}},
					},
				},
			},
		}
		if _, err := client.AppsV1().ReplicaSets(ns).Create(context.Background(), rs, metav1.CreateOptions{}); err != nil {
			return err
		}
		svc := &corev1.Service{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{"app": name}},
			Spec: corev1.ServiceSpec{Selector: map[string]string{"app": name},
				Ports: []corev1.ServicePort{{Name: "http", Port: 80, TargetPort: intstr.FromString("http")}}},
		}
		_, err := client.CoreV1().Services(ns).Create(context.Background(), svc, metav1.CreateOptions{})
		return err
	})
}

// otherNode is the kubelet of the other node, reduced to its reports: each
// pod bound there is Running with an address of its own (10.128.0.0/14,
// outside every range the tests route: nothing is sent to them).
type otherNode struct {
	client  kubernetes.Interface
	pods    cache.Store
	slices  cache.Store
	queue   chan string
	next    atomic.Uint32
	started atomic.Int64 // pods given an address and Running
}

func startOtherNode(ctx context.Context, t *testing.T, client kubernetes.Interface) *otherNode {
	n := &otherNode{client: client, queue: make(chan string, 1<<17)}
	pods := coreinformers.NewFilteredPodInformer(client, "", 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.FieldSelector = "spec.nodeName=" + other })
	slices := discoveryinformers.NewEndpointSliceInformer(client, "", 0, cache.Indexers{})
	n.pods, n.slices = pods.GetStore(), slices.GetStore()
	enqueue := func(obj any) {
		if p, ok := obj.(*corev1.Pod); ok && p.Status.Phase != corev1.PodRunning && p.DeletionTimestamp == nil {
			n.queue <- p.Namespace + "/" + p.Name
		}
	}
	pods.AddEventHandler(cache.ResourceEventHandlerFuncs{AddFunc: enqueue, UpdateFunc: func(_, o any) { enqueue(o) }})
	go pods.RunWithContext(ctx)
	go slices.RunWithContext(ctx)
	for w := 0; w < 16; w++ {
		go n.worker(ctx, t)
	}
	return n
}

func (n *otherNode) worker(ctx context.Context, t *testing.T) {
	for {
		var key string
		select {
		case <-ctx.Done():
			return
		case key = <-n.queue:
		}
		obj, ok, _ := n.pods.GetByKey(key)
		if !ok {
			continue
		}
		p := obj.(*corev1.Pod).DeepCopy()
		if p.Status.Phase == corev1.PodRunning {
			continue
		}
		k := n.next.Add(1)
		ip := fmt.Sprintf("10.%d.%d.%d", 128+k>>16, k>>8&255, k&255)
		now := metav1.Now()
		p.Status.Phase = corev1.PodRunning
		p.Status.HostIP, p.Status.HostIPs = "192.0.2.2", []corev1.HostIP{{IP: "192.0.2.2"}}
		p.Status.PodIP, p.Status.PodIPs = ip, []corev1.PodIP{{IP: ip}}
		p.Status.StartTime = &now
		p.Status.Conditions = []corev1.PodCondition{
			{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.ContainersReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
			{Type: corev1.PodReady, Status: corev1.ConditionTrue, LastTransitionTime: now},
		}
		started := true
		p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "app", Image: p.Spec.Containers[0].Image,
			ImageID:     "registry.example.com/team/app@sha256:4b1e0f5c2a7d9e8f6b3c1a0d2e4f6a8b0c2d4e6f8a0b2c4d6e8f0a2b4c6d8e0f",
			ContainerID: "containerd://" + string(p.UID), Ready: true, Started: &started,
			State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: now}}}}
		if _, err := n.client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err == nil {
			n.started.Add(1)
		} else if ctx.Err() == nil {
			time.Sleep(100 * time.Millisecond)
			select { // again, unless it is gone
			case n.queue <- key:
			default:
			}
		}
	}
}

// running counts the other node's pods Running with an address, and the
// pod endpoints of the scale namespaces' EndpointSlices.
func (n *otherNode) running() (pods, endpoints int) {
	for _, obj := range n.pods.List() {
		if p := obj.(*corev1.Pod); p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && p.DeletionTimestamp == nil {
			pods++
		}
	}
	for _, obj := range n.slices.List() {
		sl := obj.(*discoveryv1.EndpointSlice)
		for _, e := range sl.Endpoints {
			if e.NodeName != nil && *e.NodeName == other {
				endpoints += len(e.Addresses)
			}
		}
	}
	return pods, endpoints
}

func (n *otherNode) waitConverged(t *testing.T, want int, within time.Duration) {
	deadline := time.Now().Add(within)
	last := time.Now()
	for {
		pods, eps := n.running()
		if pods == want && eps == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d pods running, %d endpoints, want %d of each", pods, eps, want)
		}
		if time.Since(last) > 30*time.Second {
			t.Logf("... %d pods running, %d endpoints, want %d", pods, eps, want)
			last = time.Now()
		}
		time.Sleep(time.Second)
	}
}

// churn deletes rate pods a second, at random among the other node's, and
// keeps the highest RSS of each agent.
func churn(ctx context.Context, client kubernetes.Interface, n *otherNode, rate int, deleted *atomic.Int64, agents []*harness.Agent, peaks []atomic.Int64) {
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	zero := int64(0)
	sem := make(chan struct{}, 16)
	var keys []string
	for i := 0; ; i++ {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		if i%rate == 0 {
			keys = n.pods.ListKeys()
			for i, a := range agents {
				if rss, err := a.RSS(); err == nil && rss > peaks[i].Load() {
					peaks[i].Store(rss)
				}
			}
		}
		if len(keys) == 0 {
			continue
		}
		key := keys[rand.IntN(len(keys))]
		obj, ok, _ := n.pods.GetByKey(key)
		if !ok {
			continue
		}
		p := obj.(*corev1.Pod)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem }()
			if client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero}) == nil {
				deleted.Add(1)
			}
		}()
	}
}
