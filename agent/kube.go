package agent

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/go-logr/zapr"
	"go.uber.org/zap"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/klog/v2"

	"github.com/stratanet/strata/agent/config"
	"github.com/stratanet/strata/identity/kube"
	"github.com/stratanet/strata/identity/process"
)

// syncWait bounds how long the agent waits for the informers' first lists
// before it starts counting: long enough for a busy API server, short
// enough that an unreachable one delays the node's metrics by seconds, not
// forever. Until they arrive, cluster addresses resolve late (see flow).
const syncWait = 30 * time.Second

// kubeWanted says whether the agent names ends by Kubernetes workloads:
// always when on, when auto only where there is a cluster to ask (in a pod,
// or a kubeconfig was given).
func kubeWanted(cfg config.Config) bool {
	switch cfg.Kubernetes {
	case "on":
		return true
	case "auto":
		return cfg.Kubeconfig != "" || os.Getenv("KUBERNETES_SERVICE_HOST") != ""
	}
	return false
}

// startKube connects to the API server and starts the informers; they run
// until ctx ends. A cluster that cannot be reached at all is an error (the
// operator asked for names the agent cannot give); one that is slow to list
// only delays names.
func startKube(ctx context.Context, cfg config.Config, log *zap.Logger) (*kube.Cache, error) {
	klogToZap(log)
	rc, err := kube.Config(cfg.Kubeconfig)
	if err != nil {
		return nil, fmt.Errorf("%w: --kubernetes=%s: %w", ErrUsage, cfg.Kubernetes, err)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	// One bounded call first, so that a wrong address or credential is a
	// clear error at start rather than informers retrying in the background.
	check := rest.CopyConfig(rc)
	check.Timeout = 10 * time.Second
	if cc, err := kubernetes.NewForConfig(check); err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	} else if _, err := cc.Discovery().ServerVersion(); err != nil {
		return nil, fmt.Errorf("kubernetes API server %s: %w", rc.Host, err)
	}
	probe, cancel := context.WithTimeout(ctx, syncWait)
	defer cancel()
	c, err := kube.New(client, kube.Options{})
	if err != nil {
		return nil, err
	}
	c.Start(ctx)
	start := time.Now()
	if err := c.WaitForSync(probe); err != nil {
		log.Warn("Kubernetes informers have not listed everything yet; cluster addresses are named as they arrive",
			zap.String("api_server", rc.Host), zap.Duration("waited", syncWait))
	} else {
		log.Info("Kubernetes identity ready", zap.String("api_server", rc.Host), zap.Duration("sync", time.Since(start).Round(time.Millisecond)))
	}
	return c, nil
}

// klogToZap sends what client-go logs through klog (a watch refused, a
// relist) to the agent's logger, named client-go, rather than klog's own
// format on stderr.
func klogToZap(log *zap.Logger) { klog.SetLogger(zapr.NewLogger(log.Named("client-go"))) }

// procPods names the pod a process of the node belongs to (a host-network
// pod's, or one whose address is not reported yet), by the pod UID in its
// cgroup file. The file is read by the host worker, off the event loop:
// the first time a process is asked about, its pair waits (Pending) and
// is named again once the answer is in (the flow table's late naming).
// Answers are kept procFresh; an older one still names the process while
// the file is read again.
type procPods struct {
	byCgroup func(file []byte) (kube.Entry, bool)
	ask      process.Asker
	stats    *process.Stats // the host lookups' counters, shared with the resolver
	now      func() time.Time
	seen     map[uint32]procPod
	reading  map[uint32]bool // asked, not answered yet
}

type procPod struct {
	en   kube.Entry
	ok   bool
	when time.Time
}

// procFresh is how long a process's answer holds: a node daemon opening
// many connections has its cgroup read once.
const (
	procFresh = 5 * time.Second
	maxProcs  = 4096
)

func newProcPods(c *kube.Cache, ask process.Asker, stats *process.Stats) *procPods {
	return &procPods{
		byCgroup: func(b []byte) (kube.Entry, bool) {
			w, ok := c.ByCgroupFile(b)
			return w.Entry(), ok
		},
		ask: ask, stats: stats, now: time.Now,
		seen: map[uint32]procPod{}, reading: map[uint32]bool{},
	}
}

// pod implements kube.Pairs.Process.
func (p *procPods) pod(pid uint32) (en kube.Entry, ok, wait bool) {
	a, known := p.seen[pid]
	if known && p.now().Sub(a.when) < procFresh {
		return a.en, a.ok, false
	}
	// One the worker cannot take is named with what is known (counted).
	if !p.reading[pid] && len(p.reading) < maxProcs && p.stats.Ask(p.ask, process.Lookup{Need: process.Cgroup, PID: pid}) {
		p.reading[pid] = true
	}
	return a.en, a.ok, !known && p.reading[pid]
}

// answer folds in a cgroup file the worker read; the loop calls it in its
// turn among the records. A process gone meanwhile is no pod.
func (p *procPods) answer(a process.Answer) {
	delete(p.reading, a.PID)
	r := procPod{when: p.now()}
	if a.Err == nil {
		r.en, r.ok = p.byCgroup(a.Cgroup)
	}
	if _, ok := p.seen[a.PID]; !ok && len(p.seen) >= maxProcs {
		clear(p.seen)
	}
	p.seen[a.PID] = r
}
