// Command strata-agent is the per-node agent. See README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"runtime"
	"syscall"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/stratanet/strata/agent"
	"github.com/stratanet/strata/agent/config"
)

// Exit codes, documented in README.md.
const (
	exitRuntime   = 1
	exitUsage     = 2
	exitPrivilege = 3
	exitKernel    = 4
)

func main() {
	if len(os.Args) == 2 && (os.Args[1] == "--version" || os.Args[1] == "-version") {
		fmt.Printf("strata-agent %s %s\n", agent.Version, runtime.Version())
		os.Exit(0)
	}
	cfg, err := config.Load(os.Args[1:], os.Getenv, os.Stderr)
	if errors.Is(err, flag.ErrHelp) {
		os.Exit(0)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata-agent: %v\n", err)
		os.Exit(exitUsage)
	}
	lvl, _ := zapcore.ParseLevel(cfg.LogLevel)
	zc := zap.NewProductionConfig()
	zc.Level = zap.NewAtomicLevelAt(lvl)
	zc.Encoding = "console"
	zc.EncoderConfig.EncodeTime = zapcore.ISO8601TimeEncoder
	log, err := zc.Build()
	if err != nil {
		fmt.Fprintf(os.Stderr, "strata-agent: %v\n", err)
		os.Exit(exitRuntime)
	}
	defer log.Sync()

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	err = agent.Run(ctx, cfg, log)
	switch {
	case err == nil:
	case errors.Is(err, agent.ErrUsage):
		fmt.Fprintf(os.Stderr, "strata-agent: %v\n", err)
		os.Exit(exitUsage)
	case errors.Is(err, agent.ErrPrivilege):
		fmt.Fprintf(os.Stderr, "strata-agent: %v\n", err)
		os.Exit(exitPrivilege)
	case errors.Is(err, agent.ErrKernel):
		fmt.Fprintf(os.Stderr, "strata-agent: %v\n", err)
		os.Exit(exitKernel)
	default:
		fmt.Fprintf(os.Stderr, "strata-agent: %v\n", err)
		os.Exit(exitRuntime)
	}
}
