package cluster

import (
	"context"
	"fmt"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	coreinformers "k8s.io/client-go/informers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// kubelet is the node's agent, in its simplest honest form: every 200ms it
// compares the pods it should care about with what runs here and acts on
// the difference. It watches (rather than lists) only those pods: the
// pending ones, which it binds to its node (the scheduler's job, for one
// node), and its node's own, so that a cluster of tens of thousands of pods
// bound to other Node objects costs it nothing (see e2e/scale).
func (c *Cluster) kubelet(ctx context.Context) {
	pending := c.podInformer("spec.nodeName=")
	local := c.podInformer("spec.nodeName=" + Node)
	svcs, slices := c.serviceInformers()
	for _, inf := range []cache.SharedIndexInformer{pending, local, svcs, slices} {
		go inf.RunWithContext(ctx)
	}
	if !cache.WaitForCacheSync(ctx.Done(), pending.HasSynced, local.HasSynced, svcs.HasSynced, slices.HasSynced) {
		return
	}
	c.mu.Lock()
	c.svcStore, c.sliceStore = svcs.GetStore(), slices.GetStore()
	c.mu.Unlock()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		for _, obj := range pending.GetStore().List() {
			if p := obj.(*corev1.Pod); p.DeletionTimestamp == nil {
				c.bind(ctx, p)
			}
		}
		seen := map[string]bool{}
		for _, obj := range local.GetStore().List() {
			p := obj.(*corev1.Pod)
			seen[string(p.UID)] = true
			if p.DeletionTimestamp != nil {
				c.kill(ctx, p)
			} else {
				c.sync(ctx, p)
			}
		}
		c.mu.Lock()
		var gone []string
		for uid := range c.pods {
			if !seen[uid] {
				gone = append(gone, uid)
			}
		}
		c.mu.Unlock()
		for _, uid := range gone {
			c.remove(uid)
		}
		c.services()
	}
}

// podInformer watches the pods a field selector picks.
func (c *Cluster) podInformer(selector string) cache.SharedIndexInformer {
	return coreinformers.NewFilteredPodInformer(c.Client, "", 0, cache.Indexers{},
		func(o *metav1.ListOptions) { o.FieldSelector = selector })
}

func (c *Cluster) bind(ctx context.Context, p *corev1.Pod) {
	b := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: p.Name, Namespace: p.Namespace, UID: p.UID},
		Target: corev1.ObjectReference{Kind: "Node", Name: Node}}
	c.Client.CoreV1().Pods(p.Namespace).Bind(ctx, b, metav1.CreateOptions{})
}

// sync starts a new pod, or reports that its command ended.
func (c *Cluster) sync(ctx context.Context, p *corev1.Pod) {
	uid := string(p.UID)
	c.mu.Lock()
	local := c.pods[uid]
	c.mu.Unlock()
	if local == nil {
		if p.Status.Phase == corev1.PodSucceeded || p.Status.Phase == corev1.PodFailed {
			return
		}
		local = c.start(p)
		c.report(ctx, p, corev1.PodRunning, local.ip)
		return
	}
	if p.Status.Phase != corev1.PodRunning {
		return
	}
	code, exited := 0, false
	if local.ctr != nil {
		code, exited = local.ctr.Exited()
	} else {
		code, exited = local.host.Exited(local.cmd)
	}
	if exited {
		phase := corev1.PodSucceeded
		if code != 0 {
			phase = corev1.PodFailed
		}
		c.report(ctx, p, phase, local.ip)
	}
}

// podBase is the third octet of this process's first pod address. Tests
// run clusters side by side (go test runs packages in parallel) and the
// agent under test sees every namespace of the machine: clusters with the
// same pod addresses would lend each other's traffic their names. So each
// test process takes its own pair of /24s in 10.244.100-199, clear of the
// 10.244.0-99 and 200+ the other tests use.
var podBase = 100 + 2*(os.Getpid()%50)

// start gives the pod a namespace and address and runs its command there.
func (c *Cluster) start(p *corev1.Pod) *pod {
	c.mu.Lock()
	rt := c.podman
	c.mu.Unlock()
	if rt != nil && rt.images[p.Spec.Containers[0].Image] && p.Spec.HostNetwork {
		local := &pod{ip: c.NodeIP()}
		ctr, err := c.startContainer(p, "")
		if err != nil {
			c.t.Errorf("kubelet: pod %s/%s: %v", p.Namespace, p.Name, err)
			ctr = &container{exited: true, code: 128}
		}
		local.ctr = ctr
		c.mu.Lock()
		c.pods[string(p.UID)] = local
		c.mu.Unlock()
		return local
	}
	// The lowest free address, as an IPAM would: a deleted pod's address
	// goes to the next pod, which is what identity must get right.
	c.mu.Lock()
	n := 1
	for c.used[n] {
		n++
	}
	c.used[n] = true
	c.hosts++
	name := fmt.Sprintf("p%d", c.hosts)
	c.mu.Unlock()
	ip := fmt.Sprintf("10.244.%d.%d", podBase+n/250, n%250+1)
	host := c.Lab.Host(name, ip+"/16")
	// Service addresses are reached through the pod's interface, where
	// the service rules rewrite them, and external hosts are on the same
	// bridge (there is no default route). Names resolve with the DNS.
	for _, dst := range []string{ServiceNet, ExternalNet} {
		if out, err := host.Run("ip", "route", "add", dst, "dev", host.Dev); err != nil {
			c.t.Errorf("kubelet: route to %s in %s: %v %s", dst, p.Name, err, out)
		}
	}
	host.Resolver(DNSServer)
	local := &pod{host: host, ip: ip, n: n}
	// Services work from the pod's first instruction, as in a real node.
	if rules := c.serviceRules(); local.program(rules) == nil {
		local.rules = strings.Join(rules, "\n")
	}
	ctr := p.Spec.Containers[0]
	if rt != nil && rt.images[ctr.Image] {
		k, err := c.startContainer(p, host.NS)
		if err != nil {
			c.t.Errorf("kubelet: pod %s/%s: %v", p.Namespace, p.Name, err)
			k = &container{exited: true, code: 128}
		}
		local.ctr = k
	} else {
		argv := append(append([]string{}, ctr.Command...), ctr.Args...)
		if len(argv) == 0 {
			argv = []string{"sleep", "infinity"}
		}
		local.cmd = host.Start(argv[0], argv[1:]...)
	}
	c.mu.Lock()
	c.pods[string(p.UID)] = local
	c.mu.Unlock()
	return local
}

// report writes the pod's status as a kubelet would.
func (c *Cluster) report(ctx context.Context, p *corev1.Pod, phase corev1.PodPhase, ip string) {
	now := metav1.Now()
	running := phase == corev1.PodRunning
	ready := corev1.ConditionFalse
	if running {
		ready = corev1.ConditionTrue
	}
	p = p.DeepCopy()
	p.Status.Phase = phase
	p.Status.PodIP = ip
	p.Status.PodIPs = []corev1.PodIP{{IP: ip}}
	p.Status.HostIP = "127.0.0.1"
	if p.Status.StartTime == nil {
		p.Status.StartTime = &now
	}
	p.Status.Conditions = []corev1.PodCondition{
		{Type: corev1.PodScheduled, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.PodInitialized, Status: corev1.ConditionTrue, LastTransitionTime: now},
		{Type: corev1.ContainersReady, Status: ready, LastTransitionTime: now},
		{Type: corev1.PodReady, Status: ready, LastTransitionTime: now},
	}
	var statuses []corev1.ContainerStatus
	for _, ctr := range p.Spec.Containers {
		st := corev1.ContainerStatus{Name: ctr.Name, Image: ctr.Image, Ready: running, Started: &running}
		if running {
			st.State.Running = &corev1.ContainerStateRunning{StartedAt: now}
		} else {
			st.State.Terminated = &corev1.ContainerStateTerminated{FinishedAt: now}
		}
		statuses = append(statuses, st)
	}
	p.Status.ContainerStatuses = statuses
	if _, err := c.Client.CoreV1().Pods(p.Namespace).UpdateStatus(ctx, p, metav1.UpdateOptions{}); err != nil && !strings.Contains(err.Error(), "not found") {
		c.t.Logf("kubelet: status of %s/%s: %v", p.Namespace, p.Name, err)
	}
}

// kill stops a deleted pod and lets the API forget it.
func (c *Cluster) kill(ctx context.Context, p *corev1.Pod) {
	c.remove(string(p.UID))
	zero := int64(0)
	c.Client.CoreV1().Pods(p.Namespace).Delete(ctx, p.Name, metav1.DeleteOptions{GracePeriodSeconds: &zero,
		Preconditions: &metav1.Preconditions{UID: &p.UID}})
}

func (c *Cluster) remove(uid string) {
	c.mu.Lock()
	local := c.pods[uid]
	delete(c.pods, uid)
	c.mu.Unlock()
	if local != nil && local.ctr != nil {
		local.ctr.stop()
	}
	if local != nil && local.host != nil {
		local.host.Remove()
		c.mu.Lock()
		delete(c.used, local.n)
		c.mu.Unlock()
	}
}
