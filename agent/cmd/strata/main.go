// Command strata is the operator's tool beside the agent (which stays lean):
//
//	strata slo generate SPEC [--rules FILE] [--dashboard FILE]
//
// reads an SLO spec (see dashboards/slo) and writes its Prometheus rules
// (to stdout without --rules) and, with --dashboard, its error-budget
// dashboard.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/stratanet/strata/dashboards"
	"github.com/stratanet/strata/dashboards/slo"
)

// Exit codes.
const (
	exitSpec  = 1 // the spec is wrong, or an output cannot be written
	exitUsage = 2
)

const usage = `usage: strata slo generate SPEC [--rules FILE] [--dashboard FILE]

Reads an SLO spec and writes Prometheus recording rules (the SLI per window),
multi-window multi-burn-rate alerts and, with --dashboard, an error-budget
Grafana dashboard. Without --rules the rules go to standard output.
`

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) < 2 || args[0] != "slo" || args[1] != "generate" {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	fs := flag.NewFlagSet("strata slo generate", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() { fmt.Fprint(stderr, usage) }
	rulesOut := fs.String("rules", "", "write the rules here instead of standard output")
	dashOut := fs.String("dashboard", "", "also write the error-budget dashboard (JSON) here")
	// Flags may come before or after the spec.
	var specs []string
	rest := args[2:]
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return exitUsage
		}
		if fs.NArg() == 0 {
			break
		}
		specs = append(specs, fs.Arg(0))
		rest = fs.Args()[1:]
	}
	if len(specs) != 1 {
		fmt.Fprint(stderr, usage)
		return exitUsage
	}
	if err := generate(specs[0], *rulesOut, *dashOut, stdout); err != nil {
		fmt.Fprintf(stderr, "strata: %v\n", err)
		return exitSpec
	}
	return 0
}

func generate(path, rulesOut, dashOut string, stdout io.Writer) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	spec, err := slo.Parse(path, data)
	if err != nil {
		return err
	}
	rules, err := slo.Rules(spec, path)
	if err != nil {
		return err
	}
	if rulesOut == "" {
		if _, err := stdout.Write(rules); err != nil {
			return err
		}
	} else if err := os.WriteFile(rulesOut, rules, 0o644); err != nil {
		return err
	}
	if dashOut != "" {
		d, err := slo.Dashboard(spec)
		if err != nil {
			return err
		}
		b, err := dashboards.Render(d)
		if err != nil {
			return err
		}
		if err := os.WriteFile(dashOut, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}
