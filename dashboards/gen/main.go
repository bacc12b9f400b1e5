// Command gen writes Strata's dashboards as JSON (dashboards/json/) and the
// alert and recording rules as a Prometheus Operator PrometheusRule
// (manifests/components/monitoring/prometheusrule.yaml). Run from the
// repository root: go run ./dashboards/gen. With -queries it prints every
// query of every panel and variable as JSON instead, for tests and review.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/stratanet/strata/dashboards"
)

func main() {
	root := flag.String("root", ".", "repository root to write under")
	queries := flag.Bool("queries", false, "print every dashboard query as JSON and write nothing")
	flag.Parse()
	if err := run(*root, *queries); err != nil {
		fmt.Fprintln(os.Stderr, "dashboards/gen:", err)
		os.Exit(1)
	}
}

func run(root string, queries bool) error {
	ds, err := dashboards.Build()
	if err != nil {
		return err
	}
	if queries {
		enc := json.NewEncoder(os.Stdout)
		enc.SetIndent("", "  ")
		enc.SetEscapeHTML(false)
		return enc.Encode(dashboards.Queries(ds))
	}
	dir := filepath.Join(root, "dashboards", "json")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	for name, d := range ds {
		b, err := dashboards.Render(d)
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			return err
		}
	}
	pr, err := dashboards.PrometheusRule(dashboards.RuleFiles())
	if err != nil {
		return err
	}
	out := filepath.Join(root, "manifests", "components", "monitoring", "prometheusrule.yaml")
	if err := os.MkdirAll(filepath.Dir(out), 0o755); err != nil {
		return err
	}
	return os.WriteFile(out, pr, 0o644)
}
