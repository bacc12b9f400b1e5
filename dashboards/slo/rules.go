package slo

import (
	"bytes"
	"fmt"
	"math"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Burn is one multi-window burn-rate condition: the error ratio over both
// windows above Factor times the error budget (the SRE workbook's pairs).
type Burn struct {
	Short, Long string
	Factor      float64
}

// Page and Ticket are the workbook's pairs: page when 2 % of a 30-day
// budget goes in an hour or 5 % in six; ticket when 10 % goes in a day or
// in three.
var (
	Page   = []Burn{{"5m", "1h", 14.4}, {"30m", "6h", 6}}
	Ticket = []Burn{{"2h", "1d", 3}, {"6h", "3d", 1}}
)

// Windows are the SLI's recorded windows: the burn-rate ones and the SLO's own.
func (o SLO) Windows() []string {
	return []string{"5m", "30m", "1h", "2h", "6h", "1d", "3d", o.Window}
}

// Budget is the error budget as a ratio: 1 - objective.
func (o SLO) Budget() float64 { return round(1 - o.Objective/100) }

// round drops float noise (1 - 0.999 = 0.0010000000000000009) so the
// thresholds in the rules read as written.
func round(v float64) float64 {
	p := math.Pow(10, 12-math.Ceil(math.Log10(math.Abs(v))))
	return math.Round(v*p) / p
}

func num(v float64) string { return strconv.FormatFloat(round(v), 'g', -1, 64) }

// Selector is the SLO's requests: server-side, the service's, filtered.
func (o SLO) Selector() string {
	m := []string{`reporter="server"`, fmt.Sprintf("destination_namespace=%q", o.Namespace), fmt.Sprintf("destination_workload=%q", o.Workload)}
	if len(o.Routes) > 0 {
		m = append(m, "route=~`"+alternatives(o.Routes)+"`")
	}
	if len(o.Exclude) > 0 {
		m = append(m, "route!~`"+alternatives(o.Exclude)+"`")
	}
	if len(o.Methods) > 0 {
		m = append(m, "method=~`"+alternatives(o.Methods)+"`")
	}
	return strings.Join(m, ", ")
}

func alternatives(vs []string) string {
	var q []string
	for _, v := range vs {
		q = append(q, regexp.QuoteMeta(v))
	}
	return strings.Join(q, "|")
}

const metric = "strata_http_server_request_duration_seconds"

// ErrorRatio is the SLI's bad share over a window.
func (o SLO) ErrorRatio(w string) string {
	all := fmt.Sprintf("sum by (cluster) (rate(%s_count{%s}[%s]))", metric, o.Selector(), w)
	if o.Kind == "latency" {
		le := fmt.Sprintf("le=%q", num(o.Threshold))
		if o.Threshold == math.Trunc(o.Threshold) { // Prometheus 3 writes le="1" as "1.0"
			le = fmt.Sprintf("le=~%q", num(o.Threshold)+"|"+num(o.Threshold)+".0")
		}
		good := fmt.Sprintf("sum by (cluster) (rate(%s_bucket{%s, %s}[%s]))", metric, o.Selector(), le, w)
		return fmt.Sprintf("1 - (%s / %s)", good, all)
	}
	bad := fmt.Sprintf("sum by (cluster) (rate(%s_count{%s, status_code=~\"5..|0\"}[%s]))", metric, o.Selector(), w)
	return fmt.Sprintf("(%s or 0 * %s) / %s", bad, all, all)
}

// Record is the recorded SLI's name for a window.
func Record(w string) string { return "strata_slo:sli_error:ratio_rate" + w }

func (o SLO) labels() map[string]string {
	return map[string]string{"slo": o.Name, "namespace": o.Namespace, "workload": o.Workload}
}

func (o SLO) describe() string {
	what := "requests answered without a 5xx"
	if o.Kind == "latency" {
		what = "requests answered within " + num(o.Threshold) + "s"
	}
	return fmt.Sprintf("%s%% of %s over %s", num(o.Objective), what, o.Window)
}

func (o SLO) burnExpr(pairs []Burn) string {
	var or []string
	for _, b := range pairs {
		th := num(b.Factor * o.Budget())
		or = append(or, fmt.Sprintf("(%s{slo=%q} > %s and %s{slo=%q} > %s)", Record(b.Short), o.Name, th, Record(b.Long), o.Name, th))
	}
	return strings.Join(or, "\nor\n") + "\n"
}

type rule struct {
	Record      string            `yaml:"record,omitempty"`
	Alert       string            `yaml:"alert,omitempty"`
	Expr        string            `yaml:"expr"`
	For         string            `yaml:"for,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

type group struct {
	Name  string `yaml:"name"`
	Rules []rule `yaml:"rules"`
}

// RunbookURL is where the SLO alerts' runbooks live.
const RunbookURL = "https://github.com/stratanet/strata/blob/main/docs/runbooks.md#"

// Rules are the spec's Prometheus rules: per SLO, the SLI over every
// window, its objective and budget left, the page and ticket burn-rate
// alerts and an alert for an SLI with no data.
func Rules(s *Spec, source string) ([]byte, error) {
	var groups []group
	for _, o := range s.SLOs {
		g := group{Name: "strata-slo-" + o.Name}
		for _, w := range o.Windows() {
			g.Rules = append(g.Rules, rule{Record: Record(w), Expr: o.ErrorRatio(w), Labels: o.labels()})
		}
		g.Rules = append(g.Rules,
			rule{Record: "strata_slo:objective:ratio", Expr: fmt.Sprintf("vector(%s)", num(o.Objective/100)), Labels: o.labels()},
			rule{Record: "strata_slo:error_budget_remaining:ratio",
				Expr:   fmt.Sprintf("1 - %s{slo=%q} / %s", Record(o.Window), o.Name, num(o.Budget())),
				Labels: o.labels()},
			rule{Alert: "StrataSLOErrorBudgetBurnFast", Expr: o.burnExpr(Page),
				Labels: map[string]string{"severity": "critical", "slo": o.Name},
				Annotations: map[string]string{
					"summary":     "An SLO's error budget is burning fast.",
					"description": fmt.Sprintf("{{ $labels.namespace }}/{{ $labels.workload }} SLO {{ $labels.slo }} (%s): {{ $value | humanizePercentage }} of requests bad over the short window; at this rate the %s budget is gone in days.", o.describe(), o.Window),
					"runbook_url": RunbookURL + "stratasloerrorbudgetburnfast",
				}},
			rule{Alert: "StrataSLOErrorBudgetBurnSlow", Expr: o.burnExpr(Ticket),
				Labels: map[string]string{"severity": "warning", "slo": o.Name},
				Annotations: map[string]string{
					"summary":     "An SLO's error budget is burning faster than it lasts.",
					"description": fmt.Sprintf("{{ $labels.namespace }}/{{ $labels.workload }} SLO {{ $labels.slo }} (%s): {{ $value | humanizePercentage }} of requests bad over the short window; the budget runs out before the %s window ends.", o.describe(), o.Window),
					"runbook_url": RunbookURL + "stratasloerrorbudgetburnslow",
				}},
			rule{Alert: "StrataSLONoData", Expr: fmt.Sprintf("absent(%s_count{%s})", metric, o.Selector()), For: "15m",
				Labels: map[string]string{"severity": "warning", "slo": o.Name},
				Annotations: map[string]string{
					"summary":     "An SLO has no requests to measure.",
					"description": fmt.Sprintf("SLO %s: no %s series for %s/%s for 15 minutes: the workload was renamed, HTTP capture is off, or no agent runs on its nodes.", o.Name, metric, o.Namespace, o.Workload),
					"runbook_url": RunbookURL + "strataslonodata",
				}},
		)
		groups = append(groups, g)
	}
	var buf bytes.Buffer
	fmt.Fprintf(&buf, "# Generated by `strata slo generate %s`: edit the spec, not this.\n", source)
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(map[string]any{"groups": groups}); err != nil {
		return nil, err
	}
	return buf.Bytes(), enc.Close()
}
