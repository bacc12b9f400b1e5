package slo

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	promql "github.com/prometheus/prometheus/promql/parser"

	"github.com/stratanet/strata/dashboards"
)

func TestParseErrorsNameLineAndField(t *testing.T) {
	good := `version: strata/v1
name: shop
slos:
  - name: a
    service: shop/checkout
    objective: 99.9
    window: 30d
    sli: {kind: availability}
`
	if _, err := Parse("good.yaml", []byte(good)); err != nil {
		t.Fatalf("good spec: %v", err)
	}
	for _, c := range []struct{ from, to, want string }{
		{"version: strata/v1", "version: v2", `bad.yaml:1: version: must be strata/v1, got "v2"`},
		{"name: shop", "name: Shop", `bad.yaml:2: name: "Shop" must be lower-case letters, digits and dashes (at most 63)`},
		{"service: shop/checkout", "service: checkout", `bad.yaml:5: slos[0].service: must be namespace/workload (e.g. shop/checkout), got "checkout"`},
		{"objective: 99.9", "objective: 100", `bad.yaml:6: slos[0].objective: must be a percentage above 0 and below 100 (e.g. 99.9), got "100"`},
		{"objective: 99.9", "objective: high", `bad.yaml:6: slos[0].objective: must be a percentage above 0 and below 100 (e.g. 99.9), got "high"`},
		{"window: 30d", "window: 7d", `bad.yaml:7: slos[0].window: must be 28d or 30d, got "7d"`},
		{"window: 30d", "windw: 30d", `bad.yaml:7: slos[0].windw: unknown field (known: name, service, objective, window, sli, filter)`},
		{"sli: {kind: availability}", "sli: {kind: speed}", `bad.yaml:8: slos[0].sli.kind: must be availability or latency, got "speed"`},
		{"sli: {kind: availability}", "sli: {kind: latency, threshold: 0.3}", `bad.yaml:8: slos[0].sli.threshold: must be a bucket bound of the agent's HTTP histograms (seconds): one of 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10; got "0.3"`},
		{"sli: {kind: availability}", "sli: {kind: availability}\n    filter: {methods: [get]}", `bad.yaml:9: slos[0].filter.methods[0]: must be an upper-case HTTP method, got "get"`},
		{"    sli: {kind: availability}\n", "", `bad.yaml:4: slos[0].sli: missing: {kind: availability} or {kind: latency, threshold: SECONDS}`},
	} {
		_, err := Parse("bad.yaml", []byte(strings.Replace(good, c.from, c.to, 1)))
		var se *Error
		if !errors.As(err, &se) || err.Error() != c.want {
			t.Errorf("%s -> %s:\n got %v\nwant %s", c.from, c.to, err, c.want)
		}
	}
	dup := good + "  - name: a\n    service: shop/cart\n    objective: 99\n    window: 28d\n    sli: {kind: availability}\n"
	if _, err := Parse("dup.yaml", []byte(dup)); err == nil || err.Error() != `dup.yaml:9: slos[1].name: "a" is already the name of the SLO at line 4` {
		t.Errorf("duplicate name: %v", err)
	}
}

func TestSelectorAndThresholds(t *testing.T) {
	o := SLO{Name: "x", Namespace: "shop", Workload: "cart", Objective: 99.9, Window: "30d", Kind: "latency", Threshold: 1,
		Routes: []string{"/cart/{id}"}, Exclude: []string{"/events/stream"}, Methods: []string{"GET", "POST"}}
	if got, want := o.Selector(), "reporter=\"server\", destination_namespace=\"shop\", destination_workload=\"cart\", route=~`/cart/\\{id\\}`, route!~`/events/stream`, method=~`GET|POST`"; got != want {
		t.Errorf("selector\n got %s\nwant %s", got, want)
	}
	if got := o.ErrorRatio("5m"); !strings.Contains(got, `le=~"1|1.0"`) {
		t.Errorf("an integer bound must match Prometheus 3's 1.0 too: %s", got)
	}
	if got := o.Budget(); got != 0.001 {
		t.Errorf("budget %v, want 0.001", got)
	}
	if got := o.burnExpr(Page); !strings.Contains(got, "> 0.0144 and") || !strings.Contains(got, "> 0.006 and") {
		t.Errorf("page thresholds: %s", got)
	}
}

// The generated rules pass promtool, and promtool's own evaluation shows a
// 14.4x burn paging, a 3.5x burn opening a ticket only, a 1x burn raising
// nothing, a latency SLO's 20x burn paging, and an SLO with no requests
// reported absent.
func TestGeneratedRulesFireInPromtool(t *testing.T) {
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found (Debian package prometheus)")
		}
		t.Skip("promtool not found (Debian package prometheus)")
	}
	spec := `version: strata/v1
name: burn
slos:
  - {name: fast, service: shop/fast, objective: 99.9, window: 30d, sli: {kind: availability}}
  - {name: slow, service: shop/slow, objective: 99.9, window: 30d, sli: {kind: availability}}
  - {name: steady, service: shop/steady, objective: 99.9, window: 28d, sli: {kind: availability}}
  - {name: lat, service: shop/lat, objective: 99, window: 28d, sli: {kind: latency, threshold: 0.25}}
  - {name: gone, service: shop/gone, objective: 99, window: 28d, sli: {kind: availability}}
`
	s, err := Parse("burn.yaml", []byte(spec))
	if err != nil {
		t.Fatal(err)
	}
	rules, err := Rules(s, "burn.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "rules.yaml"), rules, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(bin, "check", "rules", filepath.Join(dir, "rules.yaml")).CombinedOutput(); err != nil {
		t.Fatalf("promtool check rules: %v\n%s", err, out)
	}
	if err := os.WriteFile(filepath.Join(dir, "test.yaml"), []byte(burnTest), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "test", "rules", "test.yaml")
	cmd.Dir = dir
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, out)
	}
}

const sel = `reporter="server", destination_namespace="shop"`

// 1000 requests a minute per workload; bad ones: fast 14.4 (14.4x a 0.1 %
// budget), slow 3.5, steady 1; lat answers 800 within 250 ms (20 % slow,
// 20x a 1 % budget).
var burnTest = `rule_files: [rules.yaml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: strata_http_server_request_duration_seconds_count{` + sel + `, destination_workload="fast", status_code="200"}
        values: 0+985.6x130
      - series: strata_http_server_request_duration_seconds_count{` + sel + `, destination_workload="fast", status_code="503"}
        values: 0+14.4x130
      - series: strata_http_server_request_duration_seconds_count{` + sel + `, destination_workload="slow", status_code="200"}
        values: 0+996.5x130
      - series: strata_http_server_request_duration_seconds_count{` + sel + `, destination_workload="slow", status_code="500"}
        values: 0+3.5x130
      - series: strata_http_server_request_duration_seconds_count{` + sel + `, destination_workload="steady", status_code="200"}
        values: 0+999x130
      - series: strata_http_server_request_duration_seconds_count{` + sel + `, destination_workload="steady", status_code="0"}
        values: 0+1x130
      - series: strata_http_server_request_duration_seconds_bucket{` + sel + `, destination_workload="lat", status_code="200", le="0.25"}
        values: 0+800x130
      - series: strata_http_server_request_duration_seconds_count{` + sel + `, destination_workload="lat", status_code="200"}
        values: 0+1000x130
    promql_expr_test:
      # rounded to a millionth: rates carry float noise in the last digit
      - expr: round(strata_slo:sli_error:ratio_rate1h{slo="fast"} * 1e6)
        eval_time: 70m
        exp_samples:
          - labels: '{slo="fast", namespace="shop", workload="fast"}'
            value: 14400
      - expr: round(strata_slo:error_budget_remaining:ratio{slo="slow"} * 1e6)
        eval_time: 70m
        exp_samples:
          - labels: '{slo="slow", namespace="shop", workload="slow"}'
            value: -2500000
    alert_rule_test:
      - alertname: StrataSLOErrorBudgetBurnFast
        eval_time: 70m
        exp_alerts:
          - exp_labels: {severity: critical, slo: fast, namespace: shop, workload: fast}
            exp_annotations:
              summary: An SLO's error budget is burning fast.
              description: 'shop/fast SLO fast (99.9% of requests answered without a 5xx over 30d): 1.44% of requests bad over the short window; at this rate the 30d budget is gone in days.'
              runbook_url: https://github.com/stratanet/strata/blob/main/docs/runbooks.md#stratasloerrorbudgetburnfast
          - exp_labels: {severity: critical, slo: lat, namespace: shop, workload: lat}
            exp_annotations:
              summary: An SLO's error budget is burning fast.
              description: 'shop/lat SLO lat (99% of requests answered within 0.25s over 28d): 20% of requests bad over the short window; at this rate the 28d budget is gone in days.'
              runbook_url: https://github.com/stratanet/strata/blob/main/docs/runbooks.md#stratasloerrorbudgetburnfast
      - alertname: StrataSLOErrorBudgetBurnSlow
        eval_time: 70m
        exp_alerts:
          - exp_labels: {severity: warning, slo: fast, namespace: shop, workload: fast}
            exp_annotations:
              summary: An SLO's error budget is burning faster than it lasts.
              description: 'shop/fast SLO fast (99.9% of requests answered without a 5xx over 30d): 1.44% of requests bad over the short window; the budget runs out before the 30d window ends.'
              runbook_url: https://github.com/stratanet/strata/blob/main/docs/runbooks.md#stratasloerrorbudgetburnslow
          - exp_labels: {severity: warning, slo: slow, namespace: shop, workload: slow}
            exp_annotations:
              summary: An SLO's error budget is burning faster than it lasts.
              description: 'shop/slow SLO slow (99.9% of requests answered without a 5xx over 30d): 0.35% of requests bad over the short window; the budget runs out before the 30d window ends.'
              runbook_url: https://github.com/stratanet/strata/blob/main/docs/runbooks.md#stratasloerrorbudgetburnslow
          - exp_labels: {severity: warning, slo: lat, namespace: shop, workload: lat}
            exp_annotations:
              summary: An SLO's error budget is burning faster than it lasts.
              description: 'shop/lat SLO lat (99% of requests answered within 0.25s over 28d): 20% of requests bad over the short window; the budget runs out before the 28d window ends.'
              runbook_url: https://github.com/stratanet/strata/blob/main/docs/runbooks.md#stratasloerrorbudgetburnslow
      - alertname: StrataSLONoData
        eval_time: 10m
        exp_alerts: []
      - alertname: StrataSLONoData
        eval_time: 20m
        exp_alerts:
          - exp_labels: {severity: warning, slo: gone, reporter: server, destination_namespace: shop, destination_workload: gone}
            exp_annotations:
              summary: An SLO has no requests to measure.
              description: 'SLO gone: no strata_http_server_request_duration_seconds series for shop/gone for 15 minutes: the workload was renamed, HTTP capture is off, or no agent runs on its nodes.'
              runbook_url: https://github.com/stratanet/strata/blob/main/docs/runbooks.md#strataslonodata
`

// The committed example is what make dashboards generates from its spec.
func TestExampleIsFresh(t *testing.T) {
	const src = "dashboards/slo/example/checkout.yaml"
	data, err := os.ReadFile("example/checkout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse(src, data)
	if err != nil {
		t.Fatal(err)
	}
	rules, err := Rules(s, src)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile("example/checkout.rules.yaml"); string(got) != string(rules) {
		t.Error("example/checkout.rules.yaml is stale: run make dashboards")
	}
	d, err := Dashboard(s)
	if err != nil {
		t.Fatal(err)
	}
	want, err := dashboards.Render(d)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile("example/checkout.dashboard.json"); string(got) != string(want) {
		t.Error("example/checkout.dashboard.json is stale: run make dashboards")
	}
}

func TestSLOAlertsHaveRunbooks(t *testing.T) {
	doc, err := os.ReadFile("../../docs/runbooks.md")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse("s.yaml", []byte("version: strata/v1\nname: x\nslos:\n  - {name: a, service: shop/cart, objective: 99, window: 28d, sli: {kind: availability}}\n"))
	if err != nil {
		t.Fatal(err)
	}
	b, err := Rules(s, "s.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert       string
				Annotations map[string]string
			}
		}
	}
	if err := yaml.Unmarshal(b, &f); err != nil {
		t.Fatal(err)
	}
	var alerts []string
	for _, r := range f.Groups[0].Rules {
		if r.Alert == "" {
			continue
		}
		alerts = append(alerts, r.Alert)
		if !strings.Contains(string(doc), "\n## "+r.Alert+"\n") || r.Annotations["runbook_url"] != RunbookURL+strings.ToLower(r.Alert) {
			t.Errorf("%s: runbook_url %s, or no section in docs/runbooks.md", r.Alert, r.Annotations["runbook_url"])
		}
	}
	if strings.Join(alerts, ",") != "StrataSLOErrorBudgetBurnFast,StrataSLOErrorBudgetBurnSlow,StrataSLONoData" {
		t.Errorf("alerts %v", alerts)
	}
}

func TestDashboardQueriesParseAndFilterByCluster(t *testing.T) {
	data, err := os.ReadFile("example/checkout.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s, err := Parse("checkout.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	d, err := Dashboard(s)
	if err != nil {
		t.Fatal(err)
	}
	qs := dashboards.Queries(map[string]dashboard.Dashboard{"slo.json": d})
	if len(qs) != 1+2*9 { // $cluster; per SLO: SLI, budget left, 4 burn rates, 2 error ratios and the budget line
		t.Errorf("%d queries, want 19", len(qs))
	}
	for _, q := range qs[1:] {
		if !strings.Contains(q.Expr, dashboards.C) {
			t.Errorf("%s: no cluster filter: %s", q.Panel, q.Expr)
		}
		if _, err := promql.ParseExpr(dashboards.Substitute(q.Expr, map[string]string{"cluster": "c1"})); err != nil {
			t.Errorf("%s: %v", q.Panel, err)
		}
	}
}
