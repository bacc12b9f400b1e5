//go:build tools

// Package tools pins Loki, the log backend the end-to-end tests push
// connection events to and query back. A module of its own keeps its
// dependencies out of the agent's go.mod; the replace lines are Loki's own.
package tools

import _ "github.com/grafana/loki/v3/cmd/loki"
