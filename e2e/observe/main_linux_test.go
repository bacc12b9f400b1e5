// Package observe_test proves the shipped dashboards and rules on real data:
// a scenario in the test cluster (e2e/cluster) watched by the agent in
// Kubernetes mode, scraped by a real Prometheus with the shipped rules,
// alerting a real Alertmanager, pushing events to VictoriaLogs. Every
// panel's query must return data and the expected ones the scenario's
// exact numbers.
package observe_test

import (
	"testing"

	"github.com/stratanet/strata/e2e/harness"
)

var bin string

func TestMain(m *testing.M) {
	harness.Main(m, &bin, map[string]string{
		"strata-agent": "../../agent/cmd/strata-agent",
		"tcpserver":    "../cmd/tcpserver",
		"tcpclient":    "../cmd/tcpclient",
		"dnsquery":     "../cmd/dnsquery",
		"dnsfault":     "../cmd/dnsfault",
		"httpserver":   "../cmd/httpserver",
		"httpclient":   "../cmd/httpclient",
	})
}
