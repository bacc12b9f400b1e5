package agent

import (
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
)

// Version is the agent's release, `git describe` at build time (make
// build and make image set it with -ldflags -X); "dev" otherwise.
var Version = "dev"

// buildInfo is strata_agent_build_info{version,goversion} = 1.
func buildInfo() prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{
		Name:        "strata_agent_build_info",
		Help:        "The agent's version and the Go release it was built with.",
		ConstLabels: prometheus.Labels{"version": Version, "goversion": runtime.Version()},
	})
	g.Set(1)
	return g
}
