package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// DNS is the DNS queries the workloads make: rcodes, latency, the failing
// names and who asks for them, timeouts.
func DNS() *dashboard.DashboardBuilder {
	m := []string{C, `source_namespace=~"$namespace"`, `source_workload=~"$workload"`}
	const req, dur = "strata_dns_requests_total", "strata_dns_request_duration_seconds"
	d := base("strata-dns", "Strata / DNS",
		"DNS as the workloads experience it: answers by rcode, latency, the names that fail and who asks for them, unanswered queries.").
		WithVariable(datasourceVar(LokiVar, "loki", "Loki")).
		WithVariable(clusterVar()).
		WithVariable(allVar("namespace", "namespace", `label_values(strata_dns_requests_total{cluster=~"$cluster"}, source_namespace)`)).
		WithVariable(allVar("workload", "workload", `label_values(strata_dns_requests_total{cluster=~"$cluster", source_namespace=~"$namespace"}, source_workload)`))

	d.WithRow(row("Queries")).
		WithPanel(series("Queries by rcode", "reqps",
			"DNS queries per second by response code (timeout: no answer within the agent's --dns-timeout).",
			prom(fmt.Sprintf("sum by (rcode) (%s)", rate(req, m...)), "{{rcode}}"))).
		WithPanel(series("Error ratio by client", "percentunit",
			"Share of each client workload's queries answered with an rcode other than NOERROR, or unanswered. NXDOMAIN from Kubernetes search-path expansion lands here too; the alerts ignore it.",
			prom(ratio(req, "source_namespace, source_workload", `rcode!="NOERROR"`, m...), "{{source_namespace}}/{{source_workload}}")).Min(0)).
		WithPanel(series("Latency", "s",
			"Query to response, p50/p95/p99 (a timeout observes the timeout).",
			quantiles(dur, "", m...)...)).
		WithPanel(series("Unanswered queries by client", "reqps",
			"Queries per second no response answered within the timeout, by client workload.",
			prom(zeroFilled(req, "source_namespace, source_workload", `rcode="timeout"`, m...), "{{source_namespace}}/{{source_workload}}")))

	d.WithRow(row("Failing names")).
		WithPanel(tableOf("Top NXDOMAIN names", "reqps",
			"Names answered NXDOMAIN most often over the dashboard's range, and by whom. A name that also resolves (see the alert) is a real problem; search-path expansions are not.",
			instant(fmt.Sprintf(`topk(10, sum by (qname, source_namespace, source_workload) (rate(%s{%s, rcode="NXDOMAIN"}[$__range])) > 0)`, req, sel(m...))))).
		WithPanel(tableOf("Top SERVFAIL names", "reqps",
			"Names answered SERVFAIL most often over the dashboard's range, and by whom: the resolver or an upstream server failed.",
			instant(fmt.Sprintf(`topk(10, sum by (qname, source_namespace, source_workload) (rate(%s{%s, rcode="SERVFAIL"}[$__range])) > 0)`, req, sel(m...))))).
		WithPanel(tableOf("Clients with DNS errors", "reqps",
			"Client workloads by failing rcode over the dashboard's range.",
			instant(fmt.Sprintf(`sum by (source_namespace, source_workload, rcode) (rate(%s{%s, rcode!="NOERROR"}[$__range])) > 0`, req, sel(m...))))).
		WithPanel(tableOf("Query types", "reqps",
			"Queries per second by type and rcode over the dashboard's range.",
			instant(fmt.Sprintf(`sum by (qtype, rcode) (rate(%s{%s}[$__range]))`, req, sel(m...)))))

	d.WithRow(row("Events")).
		WithPanel(logsOf("DNS errors", "Every failed or unanswered query with its full name (never folded), server and duration.", DNSLogs))
	return d
}

// DNSLogs is the DNS dashboard's LogQL.
const DNSLogs = `{job="strata", cluster=~"$cluster", event="dns_error"} | logfmt | source_namespace=~"$namespace" and source_workload=~"$workload"`
