package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/nodegraph"
	"github.com/grafana/grafana-foundation-sdk/go/tempo"
)

// workloadLink opens the workload dashboard on the row's destination.
func workloadLink(nsField, wlField string) cog.Builder[dashboard.DashboardLink] {
	return link("Workload ${__data.fields."+wlField+"}", "strata-workload",
		"var-namespace=${__data.fields."+nsField+"}", "var-workload=${__data.fields."+wlField+"}")
}

// Overview is the service map, the failing edges of every layer and the
// agents' health.
func Overview() *dashboard.DashboardBuilder {
	edge := "source_namespace, source_workload, destination_namespace, destination_workload"
	d := base("strata-overview", "Strata / Overview",
		"Service map, the failing edges of every layer (HTTP, TCP, DNS) and the agents' health.").
		WithVariable(datasourceVar(TempoVar, "tempo", "Tempo")).
		WithVariable(clusterVar())

	d.WithRow(row("Service map")).
		WithPanel(nodegraph.NewPanelBuilder().Title("Service map").Unit("reqps").
			Description("Requests between services, drawn by the Tempo data source's service-map query from the traces_service_graph_* metrics the agent serves (its Prometheus must be the one this dashboard reads). Red arcs are the failed share (5xx or no answer).").
			Datasource(tempoDS).Height(12).Span(24).
			WithTarget(tempo.NewDataqueryBuilder().RefId("A").QueryType("serviceMap").Datasource(tempoDS).
				ServiceMapQuery(tempo.StringOrArrayOfString{String: cog.ToPtr(`{` + C + `}`)}))).
		WithPanel(nodegraph.NewPanelBuilder().Title("Service map (Prometheus only)").Unit("reqps").
			Description("The same graph from Prometheus alone, for Grafana without a Tempo data source: node and edge frames from instant queries over the dashboard's range. Grafana's node-graph frame detection changes across versions; the table below is the stable view.").
			Datasource(promDS).Height(12).Span(12).
			WithTarget(instant(fmt.Sprintf(`sum by (id) (label_replace(sum by (client) (increase(traces_service_graph_request_total{%[1]s}[$__range])), "id", "$1", "client", "(.*)") or label_replace(sum by (server) (increase(traces_service_graph_request_total{%[1]s}[$__range])), "id", "$1", "server", "(.*)"))`, C)).RefId("nodes")).
			WithTarget(instant(fmt.Sprintf(`label_replace(label_replace(label_join(sum by (client, server) (rate(traces_service_graph_request_total{%s}[$__range])), "id", "->", "client", "server"), "source", "$1", "client", "(.*)"), "target", "$1", "server", "(.*)")`, C)).RefId("edges"))).
		WithPanel(tableOf("Service graph edges", "reqps",
			"Every client → server edge over the dashboard's range: requests per second, failed share, server-side p95.",
			instant(fmt.Sprintf("sum by (client, server) (rate(traces_service_graph_request_total{%s}[$__range]))", C)),
			instant(fmt.Sprintf("sum by (client, server) (rate(traces_service_graph_request_failed_total{%[1]s}[$__range])) / sum by (client, server) (rate(traces_service_graph_request_total{%[1]s}[$__range]))", C)),
			instant(fmt.Sprintf("histogram_quantile(0.95, sum by (client, server, le) (rate(traces_service_graph_request_server_seconds_bucket{%s}[$__range])))", C))))

	d.WithRow(row("Failing edges (last 5 minutes, from the recording rules)")).
		WithPanel(tableOf("HTTP edges with errors", "percentunit",
			"Edges whose requests failed (5xx or no answer) in the last 5 minutes: error ratio, counted once per edge (the server's side where its agent saw it). Click a row for the server's workload dashboard.",
			instant(fmt.Sprintf("topk(20, strata_edge:http_error_ratio:rate5m{%s} > 0)", C))).
			DataLinks([]cog.Builder[dashboard.DashboardLink]{workloadLink("destination_namespace", "destination_workload")})).
		WithPanel(tableOf("Failed connects", "cps",
			"Failed connection attempts per second in the last 5 minutes by edge and result (refused, timeout, reset, other), as the client saw them.",
			instant(fmt.Sprintf(`topk(20, sum by (%s, result) (strata_edge:tcp_connect_attempts:rate5m{%s, result!="success"}) > 0)`, edge, C))).
			DataLinks([]cog.Builder[dashboard.DashboardLink]{workloadLink("source_namespace", "source_workload")})).
		WithPanel(tableOf("Resets", "pps",
			"Resets on established connections per second in the last 5 minutes, by edge (counted once: the client's side where its agent saw it).",
			instant(fmt.Sprintf(`topk(20, sum by (%s, direction) (strata_edge:tcp_resets:rate5m{%s}) > 0)`, edge, C)))).
		WithPanel(tableOf("DNS errors", "reqps",
			"DNS answers other than NOERROR (and unanswered queries, rcode timeout) per second in the last 5 minutes, by client workload, name and rcode.",
			instant(fmt.Sprintf(`topk(20, sum by (source_namespace, source_workload, qname, rcode) (rate(strata_dns_requests_total{%s, rcode!="NOERROR"}[5m])) > 0)`, C))))

	d.WithRow(row("Agents")).
		WithPanel(tableOf("Probe modes", "short",
			"Agents per probe and mode. disabled: the kernel refused the probe, or HTTP/DNS capture is off by configuration.",
			instant(fmt.Sprintf(`count by (probe, mode) (strata_agent_probe_info{%s})`, C)))).
		WithPanel(series("Records lost", "short",
			"Kernel records lost per second across all agents, by probe and stage (ringbuf: kernel buffer full; queue: aggregation behind; decode: malformed).",
			prom(fmt.Sprintf("sum by (probe, stage) (%s)", rate("strata_agent_events_lost_total", C)), "{{probe}} {{stage}}")))
	return d
}
