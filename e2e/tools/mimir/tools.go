//go:build tools

// Package tools pins Mimir, the metrics backend the end-to-end tests
// remote-write to and query back. A module of its own keeps its
// dependencies out of the agent's go.mod; the replace lines are Mimir's own.
package tools

import _ "github.com/grafana/mimir/cmd/mimir"
