package kube

import (
	"context"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"testing"
	"time"
	"unique"

	corev1 "k8s.io/api/core/v1"
	discoveryv1 "k8s.io/api/discovery/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	clienttesting "k8s.io/client-go/testing"
)

func TestOwners(t *testing.T) {
	hashed := mkPod("shop", "web-5d8f7c9b4-x2k9p", uid(1), "10.244.0.1", ctrl("ReplicaSet", "web-5d8f7c9b4", uid(101)))
	orphanRS := mkPod("shop", "api-7c9d-q1", uid(6), "10.244.0.6", ctrl("ReplicaSet", "api-7c9d", uid(106)))
	orphanRS.Labels = map[string]string{"pod-template-hash": "7c9d"}
	c, client := start(t, Options{},
		mkRS("shop", "web-5d8f7c9b4", uid(101), ctrl("Deployment", "web", uid(201))),
		hashed,
		mkJob("batch", "report-29000000", uid(102), ctrl("CronJob", "report", uid(202))),
		mkPod("batch", "report-29000000-abcde", uid(2), "10.244.0.2", ctrl("Job", "report-29000000", uid(102))),
		mkPod("shop", "db-0", uid(3), "10.244.0.3", ctrl("StatefulSet", "db", uid(203))),
		mkPod("logging", "fluent-7hj2k", uid(4), "10.244.0.4", ctrl("DaemonSet", "fluent", uid(204))),
		mkPod("shop", "debug", uid(5), "10.244.0.5", nil),
		orphanRS, // its ReplicaSet is not known: the hash names the Deployment
		mkPod("shop", "bare-rs-1", uid(7), "10.244.0.7", ctrl("ReplicaSet", "bare-rs", uid(107))),
		mkRS("shop", "bare-rs", uid(107), nil),
		mkJob("batch", "migrate", uid(108), nil),
		mkPod("batch", "migrate-zz", uid(8), "10.244.0.8", ctrl("Job", "migrate", uid(108))),
		mkPod("kube-system", "etcd-node-1", uid(9), "10.244.0.9", ctrl("Node", "node-1", uid(209))),
	)
	for _, tc := range []struct {
		ip   string
		want Workload
	}{
		{"10.244.0.1", Workload{Namespace: "shop", Pod: "web-5d8f7c9b4-x2k9p", Name: "web", Kind: "Deployment"}},
		{"10.244.0.2", Workload{Namespace: "batch", Pod: "report-29000000-abcde", Name: "report", Kind: "CronJob"}},
		{"10.244.0.3", Workload{Namespace: "shop", Pod: "db-0", Name: "db", Kind: "StatefulSet"}},
		{"10.244.0.4", Workload{Namespace: "logging", Pod: "fluent-7hj2k", Name: "fluent", Kind: "DaemonSet"}},
		{"10.244.0.5", Workload{Namespace: "shop", Pod: "debug", Name: "debug", Kind: KindPod}},
		{"10.244.0.6", Workload{Namespace: "shop", Pod: "api-7c9d-q1", Name: "api", Kind: "Deployment"}},
		{"10.244.0.7", Workload{Namespace: "shop", Pod: "bare-rs-1", Name: "bare-rs", Kind: "ReplicaSet"}},
		{"10.244.0.8", Workload{Namespace: "batch", Pod: "migrate-zz", Name: "migrate", Kind: "Job"}},
		{"10.244.0.9", Workload{Namespace: "kube-system", Pod: "etcd-node-1", Name: "etcd-node-1", Kind: KindPod}},
		{"::ffff:10.244.0.3", Workload{Namespace: "shop", Pod: "db-0", Name: "db", Kind: "StatefulSet"}}, // as a dual-stack socket sees it
		{"10.244.9.9", Workload{}},
	} {
		checkIP(t, c, tc.ip, tc.want, tc.want != Workload{})
	}

	// A pod whose Job is reported after it: named after the Job until the
	// Job arrives, after its CronJob from then on, without the pod changing.
	ctx := context.Background()
	if _, err := client.CoreV1().Pods("batch").Create(ctx, mkPod("batch", "late-1-a", uid(10), "10.244.0.10", ctrl("Job", "late-1", uid(110))), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantIP(t, c, "10.244.0.10", Workload{Namespace: "batch", Pod: "late-1-a", Name: "late-1", Kind: "Job"}, true)
	if _, err := client.BatchV1().Jobs("batch").Create(ctx, mkJob("batch", "late-1", uid(110), ctrl("CronJob", "late", uid(210))), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantIP(t, c, "10.244.0.10", Workload{Namespace: "batch", Pod: "late-1-a", Name: "late", Kind: "CronJob"}, true)
}

func TestServices(t *testing.T) {
	web := ctrl("ReplicaSet", "web-abc", uid(101))
	c, client := start(t, Options{},
		mkRS("shop", "web-abc", uid(101), ctrl("Deployment", "web", uid(201))),
		mkPod("shop", "web-abc-1", uid(1), "10.244.0.1", web),
		mkPod("shop", "web-abc-2", uid(2), "10.244.0.2", web),
		mkPod("shop", "cache-0", uid(3), "10.244.0.3", ctrl("StatefulSet", "cache", uid(203))),
		// web: a ClusterIP (dual stack) and two slices, all pods of one Deployment.
		mkService("shop", "web", uid(301), "10.96.0.10", "fd00::10"),
		mkSlice("shop", "web-s1", uid(401), "web", "10.244.0.1"),
		mkSlice("shop", "web-s2", uid(402), "web", "10.244.0.2"),
		// a-web also selects web-abc-1: first by name, so web-abc-1 is named after it.
		mkService("shop", "a-web", uid(302), "10.96.0.11"),
		mkSlice("shop", "a-web-s", uid(403), "a-web", "10.244.0.1"),
		// all: backed by two workloads, so its ClusterIP names the Service.
		mkService("shop", "all", uid(303), "10.96.0.12"),
		mkSlice("shop", "all-s", uid(404), "all", "10.244.0.2", "10.244.0.3"),
		// headless: no ClusterIP, its slices still name the pods.
		mkService("shop", "cache", uid(304), "None"),
		mkSlice("shop", "cache-s", uid(405), "cache", "10.244.0.3"),
		// a Service without selector pointing outside, and one over a
		// host-network pod (its endpoint is the node's IP).
		mkService("shop", "ext-db", uid(305), "10.96.0.13"),
		mkSlice("shop", "ext-db-s", uid(406), "ext-db", "|", "192.0.2.7"),
		mkService("monitoring", "node-exporter", uid(306), "10.96.0.14"),
		mkSlice("monitoring", "node-exporter-s", uid(407), "node-exporter", "10.0.0.5"),
		// a slice of another namespace holding a shop pod's IP does not name it.
		mkSlice("other", "stray-s", uid(408), "aaa", "10.244.0.3"),
	)
	web1 := Workload{Namespace: "shop", Pod: "web-abc-1", Name: "web", Kind: "Deployment", Service: "a-web"}
	for _, tc := range []struct {
		ip   string
		want Workload
	}{
		{"10.96.0.10", Workload{Namespace: "shop", Name: "web", Kind: "Deployment", Service: "web"}},
		{"fd00::10", Workload{Namespace: "shop", Name: "web", Kind: "Deployment", Service: "web"}},
		{"10.96.0.11", Workload{Namespace: "shop", Name: "web", Kind: "Deployment", Service: "a-web"}},
		{"10.96.0.12", Workload{Namespace: "shop", Name: "all", Kind: KindService, Service: "all"}},
		{"10.96.0.13", Workload{Namespace: "shop", Name: "ext-db", Kind: KindService, Service: "ext-db"}},
		{"10.96.0.14", Workload{Namespace: "monitoring", Name: "node-exporter", Kind: KindService, Service: "node-exporter"}},
		{"10.244.0.1", web1},
		{"10.244.0.2", Workload{Namespace: "shop", Pod: "web-abc-2", Name: "web", Kind: "Deployment", Service: "all"}},
		{"10.244.0.3", Workload{Namespace: "shop", Pod: "cache-0", Name: "cache", Kind: "StatefulSet", Service: "all"}},
		{"192.0.2.7", Workload{Namespace: "shop", Name: "ext-db", Kind: KindService, Service: "ext-db"}},
		{"10.0.0.5", Workload{}},
	} {
		checkIP(t, c, tc.ip, tc.want, tc.want != Workload{})
	}
	if e, ok := c.Lookup(netip.MustParseAddr("10.244.0.1"), time.Now()); !ok || e != (Entry{Namespace: "shop", Workload: "web", Service: "a-web"}) {
		t.Errorf("Lookup = %+v, %v", e, ok)
	}

	// Churn: a-web goes, so web-abc-1 is named after web; web's ClusterIP
	// goes and comes back as another Service's.
	ctx := context.Background()
	if err := client.DiscoveryV1().EndpointSlices("shop").Delete(ctx, "a-web-s", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	web1.Service = "web"
	wantIP(t, c, "10.244.0.1", web1, true)
	if err := client.CoreV1().Services("shop").Delete(ctx, "web", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wantIP(t, c, "10.96.0.10", Workload{}, false)
	if _, err := client.CoreV1().Services("shop").Create(ctx, mkService("shop", "web2", uid(309), "10.96.0.10"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantIP(t, c, "10.96.0.10", Workload{Namespace: "shop", Name: "web2", Kind: KindService, Service: "web2"}, true)
}

func TestIPReuse(t *testing.T) {
	c, client := start(t, Options{},
		mkPod("shop", "old-a", uid(1), "10.244.0.1", nil),
		mkPod("shop", "old-b", uid(2), "10.244.0.2", nil),
	)
	ctx := context.Background()
	pods := client.CoreV1().Pods("shop")
	newer := func(name string, n int, ip string) *corev1.Pod {
		p := mkPod("shop", name, uid(n), ip, nil)
		p.CreationTimestamp = metav1.NewTime(t0.Add(time.Minute))
		return p
	}

	// The old pod's delete, then the new pod's add.
	if err := pods.Delete(ctx, "old-a", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := pods.Create(ctx, newer("new-a", 11, "10.244.0.1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantIP(t, c, "10.244.0.1", Workload{Namespace: "shop", Pod: "new-a", Name: "new-a", Kind: KindPod}, true)

	// The new pod's add, then the old pod's delete: the delete must not
	// take the IP from the new pod.
	if _, err := pods.Create(ctx, newer("new-b", 12, "10.244.0.2"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	newB := Workload{Namespace: "shop", Pod: "new-b", Name: "new-b", Kind: KindPod}
	wantIP(t, c, "10.244.0.2", newB, true)
	if err := pods.Delete(ctx, "old-b", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() string { return "old-b's delete" }, func() bool { _, ok := c.ByCgroup(cgroupOf(uid(2))); return !ok })
	checkIP(t, c, "10.244.0.2", newB, true)
}

func TestHostNetwork(t *testing.T) {
	host := mkPod("monitoring", "node-exporter-9x8z7", uid(1), "10.0.0.5", ctrl("DaemonSet", "node-exporter", uid(201)))
	host.Spec.HostNetwork = true
	c, _ := start(t, Options{}, host, mkPod("shop", "web", uid(2), "10.244.0.2", nil))

	checkIP(t, c, "10.0.0.5", Workload{}, false) // the node's IP is every host process's
	want := Workload{Namespace: "monitoring", Pod: "node-exporter-9x8z7", Name: "node-exporter", Kind: "DaemonSet"}
	for _, path := range []string{
		"/kubepods/besteffort/pod" + string(uid(1)) + "/2d6c1b0e7f",
		"/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod" + strings.ReplaceAll(string(uid(1)), "-", "_") + ".slice/cri-containerd-2d6c1b0e7f.scope",
	} {
		if got, ok := c.ByCgroup(path); !ok || got != want {
			t.Errorf("ByCgroup(%s) = %+v, %v; want %+v", path, got, ok, want)
		}
	}
	for _, path := range []string{"/system.slice/sshd.service", "/", "", cgroupOf(uid(99))} {
		if got, ok := c.ByCgroup(path); ok {
			t.Errorf("ByCgroup(%q) = %+v, want nothing", path, got)
		}
	}
	if got, ok := c.ByCgroup(cgroupOf(uid(2))); !ok || got != (Workload{Namespace: "shop", Pod: "web", Name: "web", Kind: KindPod}) {
		t.Errorf("ByCgroup(web) = %+v, %v", got, ok)
	}
}

// TestRecordsKeep looks at what the informers' stores hold: the Cache's
// records, with only the fields identity reads.
func TestRecordsKeep(t *testing.T) {
	yes := true
	full := metav1.ObjectMeta{
		Namespace: "shop", Name: "web-abc-1", UID: uid(1), CreationTimestamp: metav1.NewTime(t0),
		Labels:      map[string]string{"app": "web", "pod-template-hash": "abc"},
		Annotations: map[string]string{"kubectl.kubernetes.io/last-applied-configuration": strings.Repeat("x", 4096)},
		ManagedFields: []metav1.ManagedFieldsEntry{{Manager: "kube-controller-manager", Operation: metav1.ManagedFieldsOperationUpdate,
			FieldsType: "FieldsV1", FieldsV1: &metav1.FieldsV1{Raw: []byte(`{"f:metadata":{}}`)}}},
		OwnerReferences: []metav1.OwnerReference{
			{APIVersion: "v1", Kind: "ConfigMap", Name: "not-the-controller", UID: uid(500)},
			{APIVersion: "apps/v1", Kind: "ReplicaSet", Name: "web-abc", UID: uid(101), Controller: &yes},
		},
		Finalizers:      []string{"example.com/keep"},
		ResourceVersion: "42", // kept: the informer needs it
	}
	p := &corev1.Pod{
		ObjectMeta: full,
		Spec: corev1.PodSpec{
			NodeName:   "node-1",
			Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27", Env: []corev1.EnvVar{{Name: "A", Value: "b"}}}},
		},
		Status: corev1.PodStatus{
			Phase: corev1.PodRunning, PodIP: "10.244.0.1", PodIPs: []corev1.PodIP{{IP: "10.244.0.1"}, {IP: "fd00::1"}},
			HostIP:            "10.0.0.1",
			Conditions:        []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}},
			ContainerStatuses: []corev1.ContainerStatus{{Name: "web", Ready: true, ImageID: "sha256:abc"}},
		},
	}
	svc := mkService("shop", "web", uid(301), "10.96.0.10")
	svc.ObjectMeta.Annotations = full.Annotations
	svc.ResourceVersion = "43"
	svc.Spec.Selector = map[string]string{"app": "web"}
	svc.Spec.Ports = []corev1.ServicePort{{Name: "http", Port: 80}}
	svc.Spec.Type = corev1.ServiceTypeClusterIP
	port := int32(8080)
	sl := mkSlice("shop", "web-s", uid(401), "web", "10.244.0.1", "|", "192.0.2.7")
	sl.Labels["endpointslice.kubernetes.io/managed-by"] = "endpointslice-controller.k8s.io"
	sl.Ports = []discoveryv1.EndpointPort{{Port: &port}}
	sl.Endpoints[0].NodeName = &p.Spec.NodeName
	sl.Endpoints[0].Conditions.Ready = &yes
	rs := mkRS("shop", "web-abc", uid(101), ctrl("Deployment", "web", uid(201)))
	rs.Annotations = full.Annotations
	rs.Spec.Template.Spec = p.Spec
	job := mkJob("batch", "report-1", uid(102), ctrl("CronJob", "report", uid(202)))
	job.Spec.Template.Spec = p.Spec

	c, _ := start(t, Options{}, p, svc, sl, rs, job)

	// Exactly these fields, and nothing else of the objects above: a
	// field added to a record must be added here.
	for _, tc := range []struct {
		store interface {
			GetByKey(string) (any, bool, error)
		}
		key  string
		want any
	}{
		{c.podInformer.GetStore(), "shop/web-abc-1", &pod{
			meta:    meta{uid: uid(1), ns: "shop", name: "web-abc-1", rv: "42"},
			origin:  unique.Make(origin{ns: "shop", owner: ref{kind: "ReplicaSet", name: "web-abc", uid: uid(101)}, hash: "abc"}),
			ips:     []netip.Addr{netip.MustParseAddr("10.244.0.1"), netip.MustParseAddr("fd00::1")},
			created: t0,
			counted: nsName{"shop", "web"}, // the state's: through the ReplicaSet to its Deployment
		}},
		{c.others[1].GetStore(), "shop/web", &service{
			meta: meta{uid: uid(301), ns: "shop", name: "web", rv: "43"},
			ips:  []netip.Addr{netip.MustParseAddr("10.96.0.10")},
		}},
		{c.others[2].GetStore(), "shop/web-s", &slice{
			meta: meta{uid: uid(401), ns: "shop", name: "web-s", rv: sl.ResourceVersion},
			svc:  "web",
			eps:  []endpoint{{netip.MustParseAddr("10.244.0.1"), true}, {netip.MustParseAddr("192.0.2.7"), false}},
		}},
		{c.owners[0].GetStore(), "shop/web-abc", &parent{
			meta:  meta{uid: uid(101), ns: "shop", name: "web-abc", rv: rs.ResourceVersion},
			owner: ref{kind: "Deployment", name: "web", uid: uid(201)},
		}},
		{c.owners[1].GetStore(), "batch/report-1", &parent{
			meta:  meta{uid: uid(102), ns: "batch", name: "report-1", rv: job.ResourceVersion},
			owner: ref{kind: "CronJob", name: "report", uid: uid(202)},
		}},
	} {
		got, ok, err := tc.store.GetByKey(tc.key)
		if err != nil || !ok {
			t.Fatalf("%s not in store: %v", tc.key, err)
		}
		if !reflect.DeepEqual(got, tc.want) {
			t.Errorf("%s stored as\n%#v\nwant\n%#v", tc.key, got, tc.want)
		}
	}
}

// TestNodeFilter: with a node, only that node's pods are listed and
// watched; the other kinds stay cluster-wide.
func TestNodeFilter(t *testing.T) {
	_, client := start(t, Options{Node: "node-1"})
	seen := map[string]string{}
	for _, a := range client.Actions() {
		if a.GetVerb() != "list" && a.GetVerb() != "watch" {
			continue
		}
		var sel string
		switch a := a.(type) {
		case clienttesting.ListAction:
			sel = a.GetListRestrictions().Fields.String()
		case clienttesting.WatchAction:
			sel = a.GetWatchRestrictions().Fields.String()
		}
		seen[a.GetVerb()+" "+a.GetResource().Resource] = sel
	}
	want := map[string]string{
		"list pods": "spec.nodeName=node-1", "watch pods": "spec.nodeName=node-1",
		"list services": "", "watch services": "",
		"list endpointslices": "", "watch endpointslices": "",
		"list replicasets": "", "watch replicasets": "",
		"list jobs": "", "watch jobs": "",
	}
	// Watches start asynchronously after the lists: wait for them.
	waitFor(t, func() string { return fmt.Sprintf("actions %v, want %v", seen, want) }, func() bool {
		for _, a := range client.Actions() {
			if w, ok := a.(clienttesting.WatchAction); ok {
				seen["watch "+w.GetResource().Resource] = w.GetWatchRestrictions().Fields.String()
			}
		}
		return reflect.DeepEqual(seen, want)
	})
}

func TestGone(t *testing.T) {
	clk := newClock(t0)
	c, cl := startAt(t, Options{}, clk.now,
		mkRS("shop", "web-abc", uid(101), ctrl("Deployment", "web", uid(201))),
		mkPod("shop", "web-abc-1", uid(1), "10.244.0.1", ctrl("ReplicaSet", "web-abc", uid(101))),
		mkPod("shop", "web-abc-2", uid(2), "10.244.0.2", ctrl("ReplicaSet", "web-abc", uid(101))),
		mkPod("shop", "db-0", uid(3), "10.244.0.3", ctrl("StatefulSet", "db", uid(203))),
		mkService("shop", "db", uid(303), "10.96.0.3"),
	)
	ctx := context.Background()
	pods := cl.CoreV1().Pods("shop")
	gone := func(name string) (time.Time, bool) { return c.Gone("shop", name) }

	if _, ok := gone("web"); ok {
		t.Error("web gone while its pods run")
	}
	if _, ok := gone("never"); ok {
		t.Error("a name never seen is gone")
	}
	clk.set(t0.Add(time.Minute))
	if err := pods.Delete(ctx, "web-abc-1", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() string { return "web-abc-1's delete" }, func() bool { _, ok := c.ByCgroup(cgroupOf(uid(1))); return !ok })
	if _, ok := gone("web"); ok {
		t.Error("web gone with one pod left")
	}
	clk.set(t0.Add(2 * time.Minute))
	if err := pods.Delete(ctx, "web-abc-2", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() string { return "web gone" }, func() bool { _, ok := gone("web"); return ok })
	if since, _ := gone("web"); !since.Equal(t0.Add(2 * time.Minute)) {
		t.Errorf("web gone since %v, want %v", since, t0.Add(2*time.Minute))
	}

	// The db StatefulSet's pod goes, its Service of the same name stays.
	if err := pods.Delete(ctx, "db-0", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() string { return "db-0's delete" }, func() bool { _, ok := c.ByCgroup(cgroupOf(uid(3))); return !ok })
	if _, ok := gone("db"); ok {
		t.Error("db gone while its Service exists")
	}

	// web comes back.
	if _, err := pods.Create(ctx, mkPod("shop", "web-abc-3", uid(4), "10.244.0.4", ctrl("ReplicaSet", "web-abc", uid(101))), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() string { return "web back" }, func() bool { _, ok := gone("web"); return !ok })
	if err := pods.Delete(ctx, "web-abc-3", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() string { return "web gone again" }, func() bool { _, ok := gone("web"); return ok })
	clk.set(t0.Add(2*time.Minute + goneKeep + time.Second))
	if _, ok := gone("web"); ok {
		t.Error("web still reported gone after goneKeep")
	}
}

func TestWaitForSyncCancelled(t *testing.T) {
	c, err := New(fake.NewClientset(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := c.WaitForSync(ctx); err == nil || !strings.Contains(err.Error(), "context canceled") {
		t.Errorf("WaitForSync on a Cache never started = %v, want context canceled", err)
	}
	if c.Synced() {
		t.Error("Synced, never started")
	}
}

func TestManyPods(t *testing.T) {
	const n, deployments = 5000, 50
	ip := func(i int) string { return fmt.Sprintf("10.1.%d.%d", i/250, i%250+1) }
	var objs []runtime.Object
	for d := range deployments {
		objs = append(objs, mkRS("ns", fmt.Sprintf("dep%d-h%d", d, d), uid(100000+d), ctrl("Deployment", fmt.Sprintf("dep%d", d), uid(200000+d))))
	}
	pod := func(i, gen int) *corev1.Pod {
		d := (i + gen) % deployments
		p := mkPod("ns", fmt.Sprintf("dep%d-h%d-%d-%d", d, d, i, gen), uid(gen*n+i), ip(i), ctrl("ReplicaSet", fmt.Sprintf("dep%d-h%d", d, d), uid(100000+d)))
		p.CreationTimestamp = metav1.NewTime(t0.Add(time.Duration(gen) * time.Minute))
		return p
	}
	for i := range n / 2 {
		objs = append(objs, pod(i, 0))
	}
	// The simple fake: NewClientset's field management costs a millisecond
	// a write, which would make this test about the fake.
	c, client := startClient(t, fake.NewSimpleClientset(objs...), Options{}, time.Now)
	ctx := context.Background()
	pods := client.CoreV1().Pods("ns")
	// The fake's watch holds 100 events and panics beyond: every 50
	// writes, wait until the Cache has seen the last one (one watch
	// stream delivers in order, so it has seen them all).
	writes := 0
	write := func(p *corev1.Pod, create bool) {
		var err error
		if create {
			_, err = pods.Create(ctx, p, metav1.CreateOptions{})
		} else {
			err = pods.Delete(ctx, p.Name, metav1.DeleteOptions{})
		}
		if err != nil {
			t.Fatal(err)
		}
		if writes++; writes%50 == 0 {
			waitFor(t, func() string { return fmt.Sprintf("write %d (%s)", writes, p.Name) }, func() bool {
				_, ok := c.ByCgroup(cgroupOf(p.UID))
				return ok == create
			})
		}
	}
	for i := n / 2; i < n; i++ { // the second half arrives by watch
		write(pod(i, 0), true)
	}
	// Then a fifth of them are replaced, half deleted first, half after
	// their successor (same IP, another Deployment) exists.
	gen := make([]int, n)
	for i := 0; i < n; i += 5 {
		if i%2 == 0 {
			write(pod(i, 0), false)
		}
		write(pod(i, 1), true)
		if i%2 == 1 {
			write(pod(i, 0), false)
		}
		gen[i] = 1
	}
	// The last write is the last delete: once it is in, all are.
	waitFor(t, func() string { return "the last delete" }, func() bool { _, ok := c.ByCgroup(cgroupOf(uid(n - 5))); return !ok })
	want := func(i int) Workload {
		p := pod(i, gen[i])
		return Workload{Namespace: "ns", Pod: p.Name, Name: fmt.Sprintf("dep%d", (i+gen[i])%deployments), Kind: "Deployment"}
	}
	wrong := 0
	for i := range n {
		got, ok := c.ByIP(netip.MustParseAddr(ip(i)))
		if !ok || got != want(i) {
			if wrong++; wrong <= 5 {
				t.Errorf("ByIP(%s) = %+v, %v; want %+v", ip(i), got, ok, want(i))
			}
		}
	}
	if wrong > 0 {
		t.Errorf("%d of %d pods resolved wrong", wrong, n)
	}
	// Nothing left behind by the replaced pods, every pod counted under
	// its Deployment, the emptied Deployments gone.
	live := map[nsName]int{}
	for i := range n {
		live[nsName{"ns", want(i).Name}]++
	}
	c.mu.RLock()
	defer c.mu.RUnlock()
	if len(c.pods) != n || len(c.podIPs) != n {
		t.Errorf("%d pods and %d IPs held, want %d each", len(c.pods), len(c.podIPs), n)
	}
	if !reflect.DeepEqual(c.live, live) {
		t.Errorf("live counts %v, want %v", c.live, live)
	}
	for d := range deployments {
		k := nsName{"ns", fmt.Sprintf("dep%d", d)}
		if _, gone := c.gone[k]; gone != (live[k] == 0) {
			t.Errorf("dep%d: gone %v with %d pods", d, gone, live[k])
		}
	}
}
