// Package storm_test runs the real agent through connection storms in
// several pairs of network namespaces at once and asserts that every
// connection is counted, exactly, at both ends, with no record lost.
package storm_test

import (
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
