// Package cluster runs a real Kubernetes control plane for end-to-end tests,
// without Docker: Debian's etcd, kube-apiserver and kube-controller-manager
// built from the k8s.io/kubernetes module (make tools), and a small kubelet
// of our own for one node. That kubelet binds every pending pod to the node,
// gives each pod a network namespace on a bridge (10.244.0.0/16), runs the
// pod's first container's command in it, and reports the pod's IP, phase and
// readiness through the status subresource. Workloads are applied with
// kubectl, so the real controllers make the ReplicaSets, Pods and
// EndpointSlices. Outside the cluster, on the same bridge, are external
// hosts and a DNS server naming them (world_linux.go).
package cluster

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/stratanet/strata/e2e/harness"
	"github.com/stratanet/strata/e2e/netlab"
)

// Node is the one node the kubelet runs.
const Node = "node-1"

// T is what the cluster needs of its owner: a *testing.T in tests, or a
// program's own implementation (e2e/cmd/demo runs the cluster outside any
// test). Fatalf and Skipf must not return.
type T interface {
	netlab.T
	TempDir() string
}

// Cluster is a running control plane and its one node.
type Cluster struct {
	t          T
	Kubeconfig string
	Client     kubernetes.Interface
	Lab        *netlab.Lab
	DNS        *DNS // names for the external hosts; every pod resolves with it
	dir        string
	kubectl    string // built with the control plane, so their versions match
	apiAddr    string
	podman     *Podman // runs pods whose image it holds; nil: none
	nodeIP     string  // the node's own address on the pod network; "": none

	mu         sync.Mutex
	pods       map[string]*pod // by UID
	svcStore   cache.Store     // Services, once the kubelet's informers synced
	sliceStore cache.Store     // EndpointSlices, likewise
	used       map[int]bool    // pod address numbers in use
	hosts      int             // namespaces made so far, for unique names
	externals  int             // external hosts made so far
	procs      []*exec.Cmd
}

type pod struct {
	host    *netlab.Host // nil for a host-network container
	ctr     *container   // a pod run by podman
	ip      string
	n       int // its address number
	cmd     *exec.Cmd
	rules   string // the service rules programmed, joined
	chained bool
}

// Start brings the control plane and the DNS up and runs the kubelet until
// the test ends.
func Start(t T) *Cluster {
	t.Helper()
	netlab.Require(t) // root and iproute2
	etcd, err := exec.LookPath("etcd")
	if err != nil {
		missing(t, "etcd not installed: make deps")
	}
	apiserver := tool(t, "kube-apiserver")
	controllers := tool(t, "kube-controller-manager")
	c := &Cluster{t: t, dir: t.TempDir(), pods: map[string]*pod{}, used: map[int]bool{}, kubectl: tool(t, "kubectl")}
	c.Lab = netlab.New(t)
	t.Cleanup(c.stop)
	c.startDNS()

	etcdAddr, peer, apiAddr := harness.FreeAddr(t), harness.FreeAddr(t), harness.FreeAddr(t)
	c.run(etcd, "--data-dir", filepath.Join(c.dir, "etcd"), "--listen-client-urls", "http://"+etcdAddr,
		"--advertise-client-urls", "http://"+etcdAddr, "--listen-peer-urls", "http://"+peer,
		"--initial-advertise-peer-urls", "http://"+peer, "--initial-cluster", "default=http://"+peer)

	token := c.secrets()
	c.apiAddr = apiAddr
	host, port, _ := strings.Cut(apiAddr, ":")
	c.run(apiserver,
		"--etcd-servers=http://"+etcdAddr,
		"--bind-address="+host, "--advertise-address="+host, "--secure-port="+port,
		"--cert-dir="+filepath.Join(c.dir, "certs"),
		"--token-auth-file="+filepath.Join(c.dir, "tokens.csv"),
		"--authorization-mode=RBAC",
		"--service-account-key-file="+filepath.Join(c.dir, "sa.pub"),
		"--service-account-signing-key-file="+filepath.Join(c.dir, "sa.key"),
		"--service-account-issuer=https://kubernetes.default.svc",
		"--service-cluster-ip-range=10.96.0.0/16",
		"--allow-privileged=true", // as kubeadm clusters, for the agent's DaemonSet
		"--disable-admission-plugins=ServiceAccount")
	c.Kubeconfig = filepath.Join(c.dir, "kubeconfig")
	os.WriteFile(c.Kubeconfig, []byte(fmt.Sprintf(kubeconfig, apiAddr, token)), 0o600)
	c.waitHealthy(apiAddr, token)

	c.run(controllers, "--kubeconfig="+c.Kubeconfig, "--leader-elect=false",
		"--secure-port=0", // no health endpoint: tests (and a demo) may run clusters side by side
		"--service-account-private-key-file="+filepath.Join(c.dir, "sa.key"),
		"--use-service-account-credentials=false", "--controllers=*,-nodelifecycle",
		// The default client rate (20/s, bursts of 30) leaves EndpointSlices
		// minutes behind a cluster of thousands of Services (e2e/scale).
		"--kube-api-qps=400", "--kube-api-burst=800", "--concurrent-service-endpoint-syncs=10",
		"--concurrent-replicaset-syncs=10")

	cfg, err := clientcmd.BuildConfigFromFlags("", c.Kubeconfig)
	if err != nil {
		t.Fatalf("%v", err)
	}
	cfg.QPS, cfg.Burst = 200, 400 // the kubelet's status writes, and tests' own calls
	cfg.ContentType = "application/vnd.kubernetes.protobuf"
	if c.Client, err = kubernetes.NewForConfig(cfg); err != nil {
		t.Fatalf("%v", err)
	}
	c.registerNode()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); c.kubelet(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	return c
}

// missing fails in CI, where a skip would hide a regression, and skips
// elsewhere.
func missing(t T, why string) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf("%s", why)
	}
	t.Skipf("%s", why)
}

// tool is the path of a binary make tools built.
func tool(t T, name string) string {
	t.Helper()
	binary := filepath.Join(harness.ToolsDir(), name)
	if _, err := os.Stat(binary); err != nil {
		missing(t, fmt.Sprintf("%s not built (%v): make tools", name, err))
	}
	return binary
}

// run starts a control-plane process until the cluster stops.
func (c *Cluster) run(name string, args ...string) {
	c.t.Helper()
	cmd := exec.Command(name, args...)
	log, err := os.Create(filepath.Join(c.dir, filepath.Base(name)+".log"))
	if err != nil {
		c.t.Fatalf("%v", err)
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		c.t.Fatalf("%v", err)
	}
	c.mu.Lock()
	c.procs = append(c.procs, cmd)
	c.mu.Unlock()
}

func (c *Cluster) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, p := range c.pods { // containers outlive this process otherwise
		if p.ctr != nil {
			if c.t.Failed() {
				c.t.Logf("container %s log:\n%s", p.ctr.name, p.ctr.Logs())
			}
			p.ctr.stop()
		}
	}
	for i := len(c.procs) - 1; i >= 0; i-- { // controllers, apiserver, then etcd
		c.procs[i].Process.Kill()
		c.procs[i].Wait()
	}
	if c.t.Failed() {
		for _, name := range []string{"etcd", "kube-apiserver", "kube-controller-manager", "dnsmasq"} {
			b, _ := os.ReadFile(filepath.Join(c.dir, name+".log"))
			if len(b) > 4000 {
				b = b[len(b)-4000:]
			}
			c.t.Logf("%s log (end):\n%s", name, b)
		}
	}
}

// secrets writes the service-account key pair and an admin token.
func (c *Cluster) secrets() string {
	c.t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		c.t.Fatalf("%v", err)
	}
	pub, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	os.WriteFile(filepath.Join(c.dir, "sa.key"), pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
	os.WriteFile(filepath.Join(c.dir, "sa.pub"), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644)
	b := make([]byte, 16)
	rand.Read(b)
	token := hex.EncodeToString(b)
	os.WriteFile(filepath.Join(c.dir, "tokens.csv"), []byte(token+",admin,admin-uid,system:masters\n"), 0o600)
	return token
}

func (c *Cluster) waitHealthy(addr, token string) {
	c.t.Helper()
	client := harness.InsecureClient()
	deadline := time.Now().Add(90 * time.Second)
	for time.Now().Before(deadline) {
		req, _ := http.NewRequest("GET", "https://"+addr+"/readyz", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		if resp, err := client.Do(req); err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		time.Sleep(250 * time.Millisecond)
	}
	c.t.Fatalf("kube-apiserver not ready within 90s")
}

func (c *Cluster) registerNode() {
	c.t.Helper()
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: Node}}
	n, err := c.Client.CoreV1().Nodes().Create(context.Background(), n, metav1.CreateOptions{})
	if err != nil {
		c.t.Fatalf("%v", err)
	}
	n.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		LastHeartbeatTime: metav1.Now(), LastTransitionTime: metav1.Now(), Reason: "KubeletReady"}}
	if _, err := c.Client.CoreV1().Nodes().UpdateStatus(context.Background(), n, metav1.UpdateOptions{}); err != nil {
		c.t.Fatalf("%v", err)
	}
}

// Kubectl runs kubectl against the cluster.
func (c *Cluster) Kubectl(args ...string) (string, error) {
	out, err := exec.Command(c.kubectl, append([]string{"--kubeconfig", c.Kubeconfig}, args...)...).CombinedOutput()
	return string(out), err
}

// Apply applies manifests with kubectl.
func (c *Cluster) Apply(manifests string) {
	c.t.Helper()
	cmd := exec.Command(c.kubectl, "--kubeconfig", c.Kubeconfig, "apply", "-f", "-")
	cmd.Stdin = strings.NewReader(manifests)
	if out, err := cmd.CombinedOutput(); err != nil {
		c.t.Fatalf("kubectl apply: %v\n%s", err, out)
	}
}

// NodeNetwork gives the machine's own namespace (the node's, PID 1's) an
// address on the pod network and routes to this cluster's pods, so that
// host-network processes can reach pods and be reached, as on a node.
// Call it before the agent starts, as a node has its address before.
func (c *Cluster) NodeNetwork() string {
	c.t.Helper()
	ip := fmt.Sprintf("10.244.%d.254", podBase) // no pod gets .251-.254 (start)
	c.Lab.Node(ip, fmt.Sprintf("10.244.%d.0/24", podBase), fmt.Sprintf("10.244.%d.0/24", podBase+1))
	c.mu.Lock()
	c.nodeIP = ip
	c.mu.Unlock()
	return ip
}

// NodeIP is the node's address: on the pod network once NodeNetwork
// gave it one, else loopback (where the API server listens).
func (c *Cluster) NodeIP() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.nodeIP != "" {
		return c.nodeIP
	}
	return "127.0.0.1"
}

// PodHost is the namespace a running pod lives in (as kubectl exec would
// reach it: its Run resolves names with the cluster's DNS), or nil if the
// kubelet does not run that pod.
func (c *Cluster) PodHost(p corev1.Pod) *netlab.Host {
	c.mu.Lock()
	defer c.mu.Unlock()
	if local := c.pods[string(p.UID)]; local != nil {
		return local.host
	}
	return nil
}

// WaitRunning waits until n pods matching selector in ns run and are ready,
// and returns them.
func (c *Cluster) WaitRunning(ns, selector string, n int) []corev1.Pod {
	c.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		list, err := c.Client.CoreV1().Pods(ns).List(context.Background(), metav1.ListOptions{LabelSelector: selector})
		var ready []corev1.Pod
		if err == nil {
			for _, p := range list.Items {
				if p.Status.Phase == corev1.PodRunning && p.Status.PodIP != "" && p.DeletionTimestamp == nil {
					ready = append(ready, p)
				}
			}
		}
		if len(ready) == n {
			return ready
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%d pods %s in %s running, want %d (%v)", len(ready), selector, ns, n, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

const kubeconfig = `apiVersion: v1
kind: Config
clusters:
- name: e2e
  cluster:
    server: https://%s
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: %s
contexts:
- name: e2e
  context: {cluster: e2e, user: admin}
current-context: e2e
`
