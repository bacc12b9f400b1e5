package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Outside is the matcher for destinations outside the cluster named by the
// DNS name their clients resolved (or a configured CIDR name): no namespace,
// and not the agent's catch-all names.
const Outside = `destination_namespace="", destination_workload!~"world|unknown|host|~other"`

// External is every outside dependency as its clients see it: calls,
// errors, latency, connects and the DNS answers for its name.
func External() *dashboard.DashboardBuilder {
	m := []string{C, `reporter="client"`, Outside, `destination_workload=~"$dependency"`}
	const httpOut = "strata_http_client_request_duration_seconds"
	d := base("strata-external", "Strata / External dependencies",
		"Dependencies outside the cluster (api.twilio.com, a partner's CIDR) as the workloads calling them see them: HTTP calls, errors, latency, connects, RTT, and the DNS answers for their names.").
		WithVariable(clusterVar()).
		WithVariable(allVar("dependency", "dependency", `label_values(strata_tcp_connections_total{cluster=~"$cluster", reporter="client", `+Outside+`}, destination_workload)`).
			Description("Outside destinations: the DNS name a client resolved, or a configured CIDR name."))

	d.WithRow(row("HTTP")).
		WithPanel(series("Calls by dependency", "reqps",
			"HTTP requests per second to each outside dependency, from every workload.",
			prom(fmt.Sprintf("sum by (destination_workload) (%s)", rate(httpOut+"_count", m...)), "{{destination_workload}}"))).
		WithPanel(series("Error ratio by dependency", "percentunit",
			"Share of calls answered 5xx or left unanswered, per dependency.",
			prom(ratio(httpOut+"_count", "destination_workload", `status_code=~"5..|0"`, m...), "{{destination_workload}}")).Min(0)).
		WithPanel(series("Latency p95 by dependency", "s",
			"Client-side p95 latency per dependency (request written to response read). Exemplars link to traces.",
			prom(fmt.Sprintf("histogram_quantile(0.95, sum by (destination_workload, le) (%s))", rate(httpOut+"_bucket", m...)), "{{destination_workload}}").Exemplar(true))).
		WithPanel(tableOf("Callers", "reqps",
			"Which workloads call which dependency, requests per second over the dashboard's range.",
			instant(fmt.Sprintf("sum by (source_namespace, source_workload, destination_workload, status_code) (rate(%s_count{%s}[$__range]))", httpOut, sel(m...)))))

	d.WithRow(row("TCP")).
		WithPanel(series("Connects by dependency and result", "cps",
			"Connection attempts per second to each dependency, by result.",
			prom(fmt.Sprintf("sum by (destination_workload, result) (%s)", rate("strata_tcp_connections_total", m...)), "{{destination_workload}} {{result}}"))).
		WithPanel(series("Connect failure ratio by dependency", "percentunit",
			"Share of connection attempts refused, timed out, reset or failed otherwise.",
			prom(ratio("strata_tcp_connections_total", "destination_workload", `result!="success"`, m...), "{{destination_workload}}")).Min(0)).
		WithPanel(series("RTT p95 by dependency", "s",
			"p95 of the smoothed RTT to each dependency: the network path's share of its latency.",
			prom(fmt.Sprintf("histogram_quantile(0.95, sum by (destination_workload, le) (%s))", rate("strata_tcp_rtt_seconds_bucket", m...)), "{{destination_workload}}"))).
		WithPanel(series("Bytes by dependency", "Bps",
			"Payload bytes per second sent to and received from each dependency.",
			prom(fmt.Sprintf("sum by (destination_workload) (%s)", rate("strata_tcp_sent_bytes_total", m...)), "sent {{destination_workload}}"),
			prom(fmt.Sprintf("sum by (destination_workload) (%s)", rate("strata_tcp_received_bytes_total", m...)), "received {{destination_workload}}")))

	d.WithRow(row("DNS")).
		WithPanel(series("DNS answers for the dependency's name", "reqps",
			"DNS queries per second for each dependency's name, by rcode (timeout: no answer). The DNS metrics carry no name on their latency, so DNS latency per name is not shown.",
			prom(fmt.Sprintf(`sum by (qname, rcode) (%s)`, rate("strata_dns_requests_total", C, `qname=~"$dependency"`)), "{{qname}} {{rcode}}")))
	return d
}
