// Package dashboards builds Strata's Grafana dashboards with the Grafana
// Foundation SDK and lists every query they run, so a test can run each one
// against a real Prometheus fed by the real agent. The JSON under json/ and
// the Prometheus Operator manifest are written by `make dashboards`
// (go run ./dashboards/gen) and checked for staleness in CI.
package dashboards

import (
	"fmt"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/heatmap"
	"github.com/grafana/grafana-foundation-sdk/go/logs"
	"github.com/grafana/grafana-foundation-sdk/go/loki"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Tag is on every Strata dashboard; the dashboards link to each other by it.
const Tag = "strata"

// Data-source variable names, one per kind.
const (
	PromVar  = "datasource"
	LokiVar  = "loki_datasource"
	TempoVar = "tempo_datasource"
)

// Kinds of data source a query is written for.
const (
	KindPrometheus = "prometheus"
	KindLoki       = "loki"
	KindTempo      = "tempo"
)

// C is the cluster matcher every query carries. An agent scraped by a
// Prometheus that adds no cluster label leaves $cluster empty, and
// cluster=~"" then matches the series without the label.
const C = `cluster=~"$cluster"`

func ref(kind, variable string) common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr(kind), Uid: cog.ToPtr("${" + variable + "}")}
}

var (
	promDS  = ref(KindPrometheus, PromVar)
	lokiDS  = ref(KindLoki, LokiVar)
	tempoDS = ref(KindTempo, TempoVar)
)

// sel joins label matchers into a selector body: sel(C, `reporter="client"`).
func sel(matchers ...string) string { return strings.Join(matchers, ", ") }

// Common variables.

func datasourceVar(name, kind, label string) *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder(name).Label(label).Type(kind)
}

// queryVar is a Prometheus label_values variable, refreshed when the time
// range changes so a new workload shows up without a reload.
func queryVar(name, label, query string) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).Label(label).
		Datasource(promDS).
		Query(dashboard.StringOrMap{String: cog.ToPtr(query)}).
		Definition(query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortAlphabeticalAsc)
}

// allVar is a multi-value variable whose All matches any value, the empty
// one included (standalone agents leave namespaces empty).
func allVar(name, label, query string) *dashboard.QueryVariableBuilder {
	return queryVar(name, label, query).Multi(true).IncludeAll(true).AllValue(".*")
}

func clusterVar() *dashboard.QueryVariableBuilder {
	return queryVar("cluster", "cluster", "label_values(strata_agent_probe_info, cluster)").
		Description("The agent's cluster label (config `cluster`, or a label your scrape config adds). Empty when the agents have none.")
}

// base is a dashboard with Strata's tag, time defaults, the Prometheus
// data-source and cluster variables, and links to its siblings keeping
// time and variables.
func base(uid, title, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{Tag}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Time("now-1h", "now").
		Refresh("30s").
		Timezone("browser").
		Link(dashboard.NewDashboardLinkBuilder("Strata").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{Tag}).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true)).
		WithVariable(datasourceVar(PromVar, "prometheus", "Prometheus"))
}

// Panels. Every one has a title, a description and a unit.

type target interface {
	cog.Builder[variants.Dataquery]
}

func prom(expr, legend string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Expr(expr).LegendFormat(legend).Range().Datasource(promDS)
}

func instant(expr string) *prometheus.DataqueryBuilder {
	return prometheus.NewDataqueryBuilder().Expr(expr).Instant().Format(prometheus.PromQueryFormatTable).Datasource(promDS)
}

func series(title, unit, description string, targets ...target) *timeseries.PanelBuilder {
	p := timeseries.NewPanelBuilder().Title(title).Unit(unit).Description(description).
		Datasource(promDS).Height(8).Span(12).FillOpacity(10).
		Legend(common.NewVizLegendOptionsBuilder().DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).ShowLegend(true).Calcs([]string{"mean", "max", "lastNotNull"})).
		Tooltip(common.NewVizTooltipOptionsBuilder().Mode(common.TooltipDisplayModeMulti).Sort(common.SortOrderDescending))
	for i, t := range targets {
		p.WithTarget(withRef(t, i))
	}
	return p
}

func tableOf(title, unit, description string, targets ...target) *table.PanelBuilder {
	p := table.NewPanelBuilder().Title(title).Unit(unit).Description(description).
		Datasource(promDS).Height(8).Span(12).
		WithTransformation(dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}}).
		WithTransformation(dashboard.DataTransformerConfig{Id: "organize", Options: map[string]any{
			"excludeByName": map[string]any{"Time": true},
		}})
	for i, t := range targets {
		p.WithTarget(withRef(t, i))
	}
	return p
}

func heatmapOf(title, unit, description, expr string) *heatmap.PanelBuilder {
	return heatmap.NewPanelBuilder().Title(title).Unit(unit).Description(description).
		Datasource(promDS).Height(8).Span(12).Calculate(false).
		WithTarget(prom(expr, "{{le}}").Format(prometheus.PromQueryFormatHeatmap).RefId("A"))
}

func logsOf(title, description, expr string) *logs.PanelBuilder {
	return logs.NewPanelBuilder().Title(title).Unit("short").Description(description).
		Datasource(lokiDS).Height(10).Span(24).
		ShowTime(true).WrapLogMessage(true).EnableLogDetails(true).
		SortOrder(common.LogsSortOrderDescending).
		WithTarget(loki.NewDataqueryBuilder().Expr(expr).RefId("A").Datasource(lokiDS))
}

// withRef names a target A, B, C… unless it has a name.
func withRef(t target, i int) target {
	if p, ok := t.(*prometheus.DataqueryBuilder); ok {
		return p.RefId(string(rune('A' + i)))
	}
	return t
}

// rate is the dashboards' rate over Grafana's safe interval.
func rate(metric string, matchers ...string) string {
	return fmt.Sprintf("rate(%s{%s}[$__rate_interval])", metric, sel(matchers...))
}

// quantiles are p50, p95 and p99 of a histogram's buckets, by the labels given.
func quantiles(metric string, by string, matchers ...string) []target {
	var ts []target
	for _, q := range []string{"0.5", "0.95", "0.99"} {
		grouping := "le"
		legend := "p" + strings.TrimPrefix(q, "0.")
		if legend == "p5" {
			legend = "p50"
		}
		if by != "" {
			grouping = by + ", le"
			legend = "{{" + strings.ReplaceAll(by, ", ", "}}/{{") + "}} " + legend
		}
		ts = append(ts, prom(fmt.Sprintf("histogram_quantile(%s, sum by (%s) (%s))", q, grouping, rate(metric+"_bucket", matchers...)), legend).Exemplar(true))
	}
	return ts
}

// zeroFilled is sum by (by) of a filtered rate, with 0 for the groups that
// have traffic but none matching, so a healthy peer shows 0, not "No data".
func zeroFilled(metric, by, filter string, matchers ...string) string {
	return fmt.Sprintf("sum by (%s) (%s) or 0 * sum by (%s) (%s)",
		by, rate(metric, append(append([]string{}, matchers...), filter)...), by, rate(metric, matchers...))
}

// ratio is the share of a metric's rate that matches filter, by the labels given.
func ratio(metric, by, filter string, matchers ...string) string {
	return fmt.Sprintf("(%s) / sum by (%s) (%s)", zeroFilled(metric, by, filter, matchers...), by, rate(metric, matchers...))
}

func row(title string) *dashboard.RowBuilder { return dashboard.NewRowBuilder(title) }

// link to another Strata dashboard, keeping the time range and the given variables.
func link(title, uid string, vars ...string) cog.Builder[dashboard.DashboardLink] {
	q := []string{"${__url_time_range}", "${" + PromVar + ":queryparam}", "${cluster:queryparam}"}
	q = append(q, vars...)
	return dashboard.NewDashboardLinkBuilder(title).Type(dashboard.DashboardLinkTypeLink).
		Url("/d/" + uid + "?" + strings.Join(q, "&"))
}

// Exported for dashboards generated elsewhere (the SLO generator's).

// Base is a Strata dashboard with the Prometheus data-source and cluster
// variables and the links to its siblings.
func Base(uid, title, description string) *dashboard.DashboardBuilder {
	return base(uid, title, description).WithVariable(clusterVar())
}

// PromDS is the Prometheus data source, as a variable.
var PromDS = promDS

// Prom is a range query on the Prometheus data source.
func Prom(expr, legend string) *prometheus.DataqueryBuilder { return prom(expr, legend) }

// Series is a time-series panel of Prometheus queries.
func Series(title, unit, description string, targets ...*prometheus.DataqueryBuilder) *timeseries.PanelBuilder {
	var ts []target
	for _, t := range targets {
		ts = append(ts, t)
	}
	return series(title, unit, description, ts...)
}
