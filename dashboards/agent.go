package dashboards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Agent is the agents' own health: probe modes, events and losses per
// stage, series and overflow, export queues and errors.
func Agent() *dashboard.DashboardBuilder {
	m := []string{C, `instance=~"$instance"`}
	d := base("strata-agent", "Strata / Agent",
		"The agents' own health: what each probe runs as, records received and lost at each stage, series and label budgets, export queues and failures.").
		WithVariable(clusterVar()).
		WithVariable(allVar("instance", "agent", `label_values(strata_agent_probe_info{cluster=~"$cluster"}, instance)`))

	d.WithRow(row("Probes")).
		WithPanel(tableOf("Probe modes", "short",
			"Each agent's probes and the mode each runs in: disabled when the kernel refused it or the capture is off.",
			instant(fmt.Sprintf("max by (instance, probe, mode) (strata_agent_probe_info{%s})", sel(m...))))).
		WithPanel(series("Records by probe", "short",
			"Kernel records received per second, per probe.",
			prom(fmt.Sprintf("sum by (probe) (%s)", rate("strata_agent_events_total", m...)), "{{probe}}"))).
		WithPanel(series("Records lost by probe and stage", "short",
			"Records lost per second: ringbuf (kernel buffer full: aggregation, or the reader, behind), decode (malformed).",
			prom(fmt.Sprintf("sum by (probe, stage) (%s)", rate("strata_agent_events_lost_total", m...)), "{{probe}} {{stage}}"))).
		WithPanel(series("Records that became no request or query", "short",
			"HTTP and DNS records the pairing could not use, per second, by outcome (unpaired, late, malformed, dropped at a bound).",
			prom(fmt.Sprintf("sum by (outcome) (%s)", rate("strata_agent_http_records_total", m...)), "http {{outcome}}"),
			prom(fmt.Sprintf("sum by (outcome) (%s)", rate("strata_agent_dns_records_total", m...)), "dns {{outcome}}")))

	d.WithRow(row("Series and budgets")).
		WithPanel(series("Series by metric", "short",
			"Series each metric has across the selected agents.",
			prom(fmt.Sprintf("sum by (metric) (strata_agent_series{%s})", sel(m...)), "{{metric}}"))).
		WithPanel(series("Label values folded into ~other", "short",
			"Label values per second folded into ~other because a label's budget (or the series cap: label flows) was full. Empty until a budget is hit.",
			prom(fmt.Sprintf("sum by (label) (%s)", rate("strata_agent_overflow_total", m...)), "{{label}}"))).
		WithPanel(series("Sockets followed", "short",
			"Live TCP sockets the flow table follows, and DNS queries waiting for an answer.",
			prom(fmt.Sprintf("sum by (instance) (strata_agent_tracked_sockets{%s})", sel(m...)), "sockets {{instance}}"),
			prom(fmt.Sprintf("sum by (instance) (strata_agent_dns_pending_queries{%s})", sel(m...)), "dns pending {{instance}}"))).
		WithPanel(series("Scrape time per collector", "s",
			"Seconds the latest scrape spent collecting each aggregation's series (flow: TCP, http, dns), the slowest agent's. The event loop waits only for the copy at its start, not for this.",
			prom(fmt.Sprintf("max by (collector) (strata_agent_collect_duration_seconds{%s})", sel(m...)), "{{collector}}"))).
		WithPanel(series("Sockets not followed", "short",
			"Sockets per second not followed because the socket table was full (untracked), or dropped after vanishing without a close (stale).",
			prom(fmt.Sprintf("sum (%s)", rate("strata_agent_untracked_sockets_total", m...)), "untracked"),
			prom(fmt.Sprintf("sum (%s)", rate("strata_agent_stale_sockets_total", m...)), "stale")))

	d.WithRow(row("Export")).
		WithPanel(series("Export queue length", "short",
			"Items waiting to be pushed, per exporter (mimir: samples, loki: events, tempo: spans). Only the configured exporters report.",
			prom(fmt.Sprintf("sum by (exporter) (strata_agent_export_queue_length{%s})", sel(m...)), "{{exporter}}"))).
		WithPanel(series("Export sent, failed and dropped", "short",
			"Per exporter, per second: items the backend accepted, failed send attempts (each retry counts), and items given up on (full queue, refused, rate-limited).",
			prom(fmt.Sprintf("sum by (exporter) (%s)", rate("strata_agent_export_sent_total", m...)), "{{exporter}} sent"),
			prom(fmt.Sprintf("sum by (exporter) (%s)", rate("strata_agent_export_errors_total", m...)), "{{exporter}} failed attempts"),
			prom(fmt.Sprintf("sum by (exporter) (%s)", rate("strata_agent_export_dropped_total", m...)), "{{exporter}} dropped")))
	return d
}
