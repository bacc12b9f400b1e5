//go:build tools

// Package tools pins VictoriaLogs (Apache-2.0), the logs backend the
// end-to-end tests push to through its Loki-compatible API and query back
// with LogsQL (Loki itself is AGPL and is not used). A module of its own
// keeps its dependencies out of the agent's go.mod.
package tools

import _ "github.com/VictoriaMetrics/VictoriaLogs/app/victoria-logs"
