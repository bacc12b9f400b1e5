//go:build tools

// Package tools pins Jaeger v2, the OTLP trace backend the end-to-end tests
// query spans back from (Tempo's module cannot be fetched here; Jaeger
// ingests the same OTLP gRPC). A module of its own keeps its dependencies
// out of the agent's go.mod.
package tools

import _ "github.com/jaegertracing/jaeger/cmd/jaeger"
