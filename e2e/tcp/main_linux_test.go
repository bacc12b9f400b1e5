// Package tcp_test runs the real agent against real connections between
// network namespaces and asserts exact values scraped from /metrics.
package tcp_test

import (
	"path/filepath"
	"testing"

	"github.com/stratanet/strata/e2e/harness"
)

// bin holds the agent and the test tools, built once.
var bin string

func TestMain(m *testing.M) {
	harness.Main(m, &bin, map[string]string{
		"strata-agent": "../../agent/cmd/strata-agent",
		"tcpserver":    "../cmd/tcpserver",
		"tcpclient":    "../cmd/tcpclient",
	})
}

type labels = harness.Labels

func startAgent(t *testing.T, args ...string) *harness.Agent {
	return harness.StartAgent(t, filepath.Join(bin, "strata-agent"), args...)
}

var requireRoot = harness.RequireRoot
