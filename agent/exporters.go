package agent

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"golang.org/x/sync/errgroup"

	"github.com/stratanet/strata/agent/config"
	"github.com/stratanet/strata/exporters/export"
	"github.com/stratanet/strata/exporters/loki"
	"github.com/stratanet/strata/exporters/mimir"
	"github.com/stratanet/strata/exporters/tempo"
)

// exporters are the pushing exporters the configuration enables; nil when
// off. Each runs alone with its own queue, so one backend's trouble never
// reaches another or the aggregation.
type exporters struct {
	mimir *mimir.Exporter
	loki  *loki.Exporter
	tempo *tempo.Exporter
}

func newExporters(cfg config.Config, log *zap.Logger, reg *prometheus.Registry) (*exporters, error) {
	node := cfg.Node
	if node == "" {
		node, _ = os.Hostname()
	}
	external := map[string]string{"cluster": cfg.Cluster, "node": node}
	x := &exporters{}
	stats := exportMetrics{}
	var err error
	if cfg.MimirURL != "" {
		x.mimir, err = mimir.New(log.Named("mimir"), mimir.Config{URL: cfg.MimirURL, HTTP: export.HTTP(cfg.Mimir()),
			Interval: cfg.MimirInterval, QueueSamples: cfg.MimirQueue, ExternalLabels: external}, reg)
		if err != nil {
			return nil, fmt.Errorf("%w: mimir: %w", ErrUsage, err)
		}
		stats["mimir"] = statsOf(x.mimir.QueueLength, &x.mimir.Stats)
	}
	if cfg.LokiURL != "" {
		x.loki, err = loki.New(log.Named("loki"), loki.Config{URL: cfg.LokiURL, HTTP: export.HTTP(cfg.Loki()), Labels: external,
			Queue: cfg.LokiQueue, Rate: float64(cfg.LokiRate), Burst: 10 * cfg.LokiRate})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		l := x.loki
		stats["loki"] = func() (int, uint64, uint64, uint64) {
			s := l.Stats()
			return l.QueueLength(), s.Sent, s.Errors, s.Dropped
		}
	}
	if cfg.OTLPEndpoint != "" {
		headers := map[string]string{}
		if cfg.OTLPTenant != "" {
			headers["X-Scope-OrgID"] = cfg.OTLPTenant
		}
		if cfg.OTLPBearerTokenFile != "" {
			token, err := os.ReadFile(cfg.OTLPBearerTokenFile)
			if err != nil {
				return nil, fmt.Errorf("%w: otlp-bearer-token-file: %w", ErrUsage, err)
			}
			headers["authorization"] = "Bearer " + strings.TrimSpace(string(token))
		}
		x.tempo, err = tempo.New(log.Named("tempo"), tempo.Config{Endpoint: cfg.OTLPEndpoint, Insecure: cfg.OTLPInsecure == "on",
			CAFile: cfg.OTLPCAFile, Headers: headers, Queue: cfg.OTLPQueue})
		if err != nil {
			return nil, fmt.Errorf("%w: %w", ErrUsage, err)
		}
		stats["tempo"] = statsOf(x.tempo.QueueLength, &x.tempo.Stats)
	}
	if len(stats) > 0 {
		reg.MustRegister(stats)
	}
	return x, nil
}

func (x *exporters) run(ctx context.Context, g *errgroup.Group) {
	if x.mimir != nil {
		g.Go(func() error { return x.mimir.Run(ctx) })
	}
	if x.loki != nil {
		g.Go(func() error { return x.loki.Run(ctx) })
	}
	if x.tempo != nil {
		g.Go(func() error { return x.tempo.Run(ctx) })
	}
}
