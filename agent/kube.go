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

// podOfProcess names the host-network pod a process of the node belongs
// to, by the pod UID in its cgroup path. Answers are kept a few seconds:
// a node daemon opening many connections reads its cgroup file once.
func podOfProcess(c *kube.Cache) func(pid uint32) (kube.Entry, bool) {
	type answer struct {
		e    kube.Entry
		ok   bool
		when time.Time
	}
	seen := map[uint32]answer{}
	return func(pid uint32) (kube.Entry, bool) {
		now := time.Now()
		if a, hit := seen[pid]; hit && now.Sub(a.when) < 5*time.Second {
			return a.e, a.ok
		}
		if len(seen) >= 4096 {
			clear(seen)
		}
		a := answer{when: now}
		if b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cgroup", pid)); err == nil {
			if w, ok := c.ByCgroupFile(b); ok {
				a.e, a.ok = w.Entry(), true
			}
		}
		seen[pid] = a
		return a.e, a.ok
	}
}
