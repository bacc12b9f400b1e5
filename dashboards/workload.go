package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Workload is one workload's inbound and outbound traffic per peer. Inbound
// series are the ones its own node's agent reported as the server, outbound
// the ones it reported as the client: each request and connection is counted
// once, by the end that belongs to this workload.
func Workload() *dashboard.DashboardBuilder {
	in := []string{C, `reporter="server"`, `destination_namespace=~"$namespace"`, `destination_workload=~"$workload"`}
	out := []string{C, `reporter="client"`, `source_namespace=~"$namespace"`, `source_workload=~"$workload"`}
	const src, dst = "source_namespace, source_workload", "destination_namespace, destination_workload"
	const srcL, dstL = "{{source_namespace}}/{{source_workload}}", "{{destination_namespace}}/{{destination_workload}}"
	const httpIn, httpOut = "strata_http_server_request_duration_seconds", "strata_http_client_request_duration_seconds"
	const fail = `status_code=~"5..|0"`

	d := base("strata-workload", "Strata / Workload",
		"One workload's HTTP and TCP golden signals per peer, inbound (its server side) and outbound (its client side), and its connection events.").
		WithVariable(datasourceVar(LokiVar, "loki", "Loki")).
		WithVariable(clusterVar()).
		WithVariable(queryVar("namespace", "namespace", `label_values(strata_workload:tcp_active_connections:sum{cluster=~"$cluster"}, namespace)`).
			Description("Namespaces of workloads an agent observed at their own end (recording rule strata_workload:tcp_active_connections:sum).")).
		WithVariable(queryVar("workload", "workload", `label_values(strata_workload:tcp_active_connections:sum{cluster=~"$cluster", namespace=~"$namespace"}, workload)`)).
		Link(link("DNS of this workload", "strata-dns", "${namespace:queryparam}", "${workload:queryparam}"))

	d.WithRow(row("Inbound HTTP (reported by this workload as server)")).
		WithPanel(series("Inbound requests by client", "reqps",
			"Requests this workload served per second, by calling workload (reporter=server).",
			prom(fmt.Sprintf("sum by (%s) (%s)", src, rate(httpIn+"_count", in...)), srcL))).
		WithPanel(series("Inbound error ratio by client", "percentunit",
			"Share of served requests answered 5xx or left unanswered (status_code 0), by calling workload.",
			prom(ratio(httpIn+"_count", src, fail, in...), srcL)).Min(0)).
		WithPanel(series("Inbound latency", "s",
			"Server-side latency (request's first bytes read to response's first bytes written), p50/p95/p99 over all clients. Exemplars link to the request's trace.",
			quantiles(httpIn, "", in...)...)).
		WithPanel(series("Inbound requests by status", "reqps",
			"Served requests per second by method, route and status code.",
			prom(fmt.Sprintf("sum by (method, route, status_code) (%s)", rate(httpIn+"_count", in...)), "{{method}} {{route}} {{status_code}}")))

	d.WithRow(row("Outbound HTTP (reported by this workload as client)")).
		WithPanel(series("Outbound requests by server", "reqps",
			"Requests this workload made per second, by called workload or outside name (reporter=client).",
			prom(fmt.Sprintf("sum by (%s) (%s)", dst, rate(httpOut+"_count", out...)), dstL))).
		WithPanel(series("Outbound error ratio by server", "percentunit",
			"Share of this workload's requests answered 5xx or left unanswered, by called peer.",
			prom(ratio(httpOut+"_count", dst, fail, out...), dstL)).Min(0)).
		WithPanel(series("Outbound latency p99 by server", "s",
			"Client-side latency (request written to response read), p99 per called peer. Exemplars link to traces.",
			prom(fmt.Sprintf("histogram_quantile(0.99, sum by (%s, le) (%s))", dst, rate(httpOut+"_bucket", out...)), dstL).Exemplar(true))).
		WithPanel(series("Outbound latency", "s",
			"Client-side latency p50/p95/p99 over all called peers. Exemplars link to traces.",
			quantiles(httpOut, "", out...)...))

	d.WithRow(row("TCP")).
		WithPanel(series("Outbound connections by server and result", "cps",
			"Connection attempts this workload made per second, by peer and result (success, refused, timeout, reset, other).",
			prom(fmt.Sprintf("sum by (destination_workload, result) (%s)", rate("strata_tcp_connections_total", out...)), "{{destination_workload}} {{result}}"))).
		WithPanel(series("Outbound failed connections", "cps",
			"Failed connection attempts per second by peer and result: refused (nothing listening), timeout (no answer, or abandoned), reset, other.",
			prom(fmt.Sprintf("sum by (destination_workload, result) (%s)", rate("strata_tcp_connections_total", append(out, `result!="success"`)...)), "{{destination_workload}} {{result}}"))).
		WithPanel(series("Inbound connections by client", "cps",
			"Connections this workload accepted per second, by client (reporter=server).",
			prom(fmt.Sprintf("sum by (source_workload) (%s)", rate("strata_tcp_connections_total", in...)), "{{source_workload}}"))).
		WithPanel(series("Open connections", "short",
			"TCP connections open now, inbound (clients) and outbound (servers).",
			prom(fmt.Sprintf("sum by (source_workload) (strata_tcp_active_connections{%s})", sel(in...)), "in from {{source_workload}}"),
			prom(fmt.Sprintf("sum by (destination_workload) (strata_tcp_active_connections{%s})", sel(out...)), "out to {{destination_workload}}"))).
		WithPanel(series("Bytes by peer", "Bps",
			"Payload bytes per second this workload sent (acknowledged) and received, by peer.",
			prom(fmt.Sprintf("sum by (destination_workload) (%s)", rate("strata_tcp_sent_bytes_total", out...)), "sent to {{destination_workload}}"),
			prom(fmt.Sprintf("sum by (destination_workload) (%s)", rate("strata_tcp_received_bytes_total", out...)), "received from {{destination_workload}}"),
			prom(fmt.Sprintf("sum by (source_workload) (%s)", rate("strata_tcp_sent_bytes_total", in...)), "sent to client {{source_workload}}"),
			prom(fmt.Sprintf("sum by (source_workload) (%s)", rate("strata_tcp_received_bytes_total", in...)), "received from client {{source_workload}}"))).
		WithPanel(series("Retransmit ratio by peer", "percentunit",
			"Segments this workload retransmitted per full-size segment's worth of bytes it sent (1448 bytes): exact for bulk transfers, an overestimate for small writes. Network loss or congestion on the path shows here first.",
			prom(fmt.Sprintf("sum by (destination_workload) (%s) / (sum by (destination_workload) (%s) / 1448)", rate("strata_tcp_retransmits_total", out...), rate("strata_tcp_sent_bytes_total", out...)), "to {{destination_workload}}"),
			prom(fmt.Sprintf("sum by (source_workload) (%s) / (sum by (source_workload) (%s) / 1448)", rate("strata_tcp_retransmits_total", in...), rate("strata_tcp_sent_bytes_total", in...)), "to client {{source_workload}}"))).
		WithPanel(series("Retransmitted segments by peer", "pps",
			"Segments this workload retransmitted per second, by peer.",
			prom(fmt.Sprintf("sum by (destination_workload) (%s)", rate("strata_tcp_retransmits_total", out...)), "to {{destination_workload}}"),
			prom(fmt.Sprintf("sum by (source_workload) (%s)", rate("strata_tcp_retransmits_total", in...)), "to client {{source_workload}}"))).
		WithPanel(heatmapOf("Outbound RTT", "s",
			"Smoothed RTT of this workload's outbound connections (kernel srtt), sampled per open connection every sweep and at close.",
			fmt.Sprintf("sum by (le) (%s)", rate("strata_tcp_rtt_seconds_bucket", out...)))).
		WithPanel(series("RTT p95 by peer", "s",
			"p95 of the smoothed RTT per peer, outbound and inbound connections.",
			prom(fmt.Sprintf("histogram_quantile(0.95, sum by (destination_workload, le) (%s))", rate("strata_tcp_rtt_seconds_bucket", out...)), "to {{destination_workload}}"),
			prom(fmt.Sprintf("histogram_quantile(0.95, sum by (source_workload, le) (%s))", rate("strata_tcp_rtt_seconds_bucket", in...)), "from client {{source_workload}}"))).
		WithPanel(series("Resets by peer", "pps",
			"TCP resets on established connections per second, by peer and direction (sent by this workload, or received). A refused connect is not a reset.",
			prom(fmt.Sprintf("sum by (destination_workload, direction) (%s)", rate("strata_tcp_resets_total", out...)), "{{destination_workload}} {{direction}}"),
			prom(fmt.Sprintf("sum by (source_workload, direction) (%s)", rate("strata_tcp_resets_total", in...)), "client {{source_workload}} {{direction}}")))

	d.WithRow(row("Events")).
		WithPanel(logsOf("Connection events",
			"This workload's connection events (failed connects, resets, retransmit bursts, HTTP errors, DNS errors), as either end. Lines with a trace_id link to the trace (provisioned derived field).",
			WorkloadLogs))
	return d
}

// WorkloadLogs is the workload dashboard's LogQL: the stream selector, then a
// logfmt filter on either end's identity.
const WorkloadLogs = `{job="strata", cluster=~"$cluster"} | logfmt | (source_namespace=~"$namespace" and source_workload=~"$workload") or (destination_namespace=~"$namespace" and destination_workload=~"$workload")`
