// Package http_test runs the real agent against real HTTP servers and
// clients in network namespaces and checks the request metrics, exemplars
// and spans, the spans as a real OTLP backend stored them.
package http_test

import (
	"path/filepath"
	"testing"

	"github.com/stratanet/strata/e2e/harness"
)

var bin string

func TestMain(m *testing.M) {
	harness.Main(m, &bin, map[string]string{
		"strata-agent": "../../agent/cmd/strata-agent",
		"httpserver":   "../cmd/httpserver",
		"httpclient":   "../cmd/httpclient",
		"tcpserver":    "../cmd/tcpserver",
		"tcpclient":    "../cmd/tcpclient",
	})
}

type labels = harness.Labels

func startAgent(t *testing.T, args ...string) *harness.Agent {
	return harness.StartAgent(t, filepath.Join(bin, "strata-agent"), args...)
}
