// Package http_test runs the real agent against real HTTP servers and
// clients in network namespaces and checks the request metrics, exemplars
// and spans, the spans as a real OTLP backend stored them.
package http_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stratanet/strata/e2e/harness"
)

var bin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-e2e-http-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	bin = dir
	if err := harness.Build(dir, map[string]string{
		"strata-agent": "../../agent/cmd/strata-agent",
		"httpserver":   "../cmd/httpserver",
		"httpclient":   "../cmd/httpclient",
	}); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type labels = harness.Labels

func startAgent(t *testing.T, args ...string) *harness.Agent {
	return harness.StartAgent(t, filepath.Join(bin, "strata-agent"), args...)
}
