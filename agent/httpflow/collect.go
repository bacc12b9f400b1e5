package httpflow

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/stratanet/strata/agent/flow"
	"github.com/stratanet/strata/agent/hist"
	"github.com/stratanet/strata/identity"
)

var (
	labels     = append(append([]string{}, flow.KeyLabels...), "method", "status_code", "route")
	serverDesc = prometheus.NewDesc("strata_http_server_request_duration_seconds",
		"HTTP requests this host served: time from the request's first bytes read to the response's first bytes written.", labels, nil)
	clientDesc = prometheus.NewDesc("strata_http_client_request_duration_seconds",
		"HTTP requests this host made: time from the request's first bytes written to the response's first bytes read.", labels, nil)
	graphLabels      = []string{"client", "server"}
	graphRequests    = prometheus.NewDesc("traces_service_graph_request_total", "Requests between two services (counted where the server is observed, or at the client when the server is outside).", graphLabels, nil)
	graphFailed      = prometheus.NewDesc("traces_service_graph_request_failed_total", "Requests between two services that failed: 5xx, or no answer.", graphLabels, nil)
	graphServerTimes = prometheus.NewDesc("traces_service_graph_request_server_seconds", "Request durations as the server saw them.", graphLabels, nil)
	graphClientTimes = prometheus.NewDesc("traces_service_graph_request_client_seconds", "Request durations as the client saw them.", graphLabels, nil)
	healthDesc       = prometheus.NewDesc("strata_agent_http_records_total",
		"HTTP records that did not become a request: unpaired responses, malformed heads, dropped at a bound.", []string{"outcome"}, nil)
)

func (t *Table) Describe(chan<- *prometheus.Desc) {}

// sample is one series as a scrape reads it.
type sample struct {
	key       seriesKey
	h         hist.Histogram
	exemplars []prometheus.Exemplar
}

// snapshot copies what a scrape reads under the lock; the metrics are built
// from the copy outside it, so a scrape holds the event loop up only for
// the copy, not for building and sending every series.
func (t *Table) snapshot() (series []sample, unpaired, malformed, dropped uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	series = make([]sample, 0, len(t.series))
	for k, h := range t.series {
		s := sample{key: k}
		s.h.Add(&h.Histogram)
		for _, e := range h.exemplars {
			if e != nil {
				s.exemplars = append(s.exemplars, *e)
			}
		}
		series = append(series, s)
	}
	return series, t.unpaired, t.malformed, t.dropped
}

func (t *Table) Collect(ch chan<- prometheus.Metric) {
	series, unpaired, malformed, dropped := t.snapshot()
	for i := range series {
		s := &series[i]
		d := clientDesc
		if s.key.server {
			d = serverDesc
		}
		m := s.h.Metric(d, buckets, append(s.key.Key.Values(), s.key.method, s.key.status, s.key.path)...)
		if len(s.exemplars) > 0 {
			if withEx, err := prometheus.NewMetricWithExemplars(m, s.exemplars...); err == nil {
				m = withEx
			}
		}
		ch <- m
	}
	collectGraph(ch, series)
	for outcome, n := range map[string]uint64{"unpaired": unpaired, "malformed": malformed, "dropped": dropped} {
		ch <- prometheus.MustNewConstMetric(healthDesc, prometheus.CounterValue, float64(n), outcome)
	}
}

// edge is one client -> server pair of the service graph.
type edge struct{ client, server string }

type edgeStats struct {
	requests, failed uint64
	server, client   hist.Histogram
}

// collectGraph folds the request series into Grafana's service-graph
// metrics. A request is counted once: where its server is observed, or at
// its client when the server is outside (world), where no agent sees it.
func collectGraph(ch chan<- prometheus.Metric, series []sample) {
	edges := map[edge]*edgeStats{}
	for i := range series {
		k, h := series[i].key, &series[i].h
		e := edge{serviceName(k.SourceNamespace, k.SourceWorkload), serviceName(k.DestinationNamespace, k.DestinationWorkload)}
		st := edges[e]
		if st == nil {
			st = &edgeStats{}
			edges[e] = st
		}
		if k.server {
			st.server.Add(h)
		} else {
			st.client.Add(h)
		}
		if k.server || k.DestinationWorkload == identity.World {
			st.requests += h.Count()
			if k.status == Noanswer || k.status[0] == '5' {
				st.failed += h.Count()
			}
		}
	}
	for e, st := range edges {
		ch <- prometheus.MustNewConstMetric(graphRequests, prometheus.CounterValue, float64(st.requests), e.client, e.server)
		ch <- prometheus.MustNewConstMetric(graphFailed, prometheus.CounterValue, float64(st.failed), e.client, e.server)
		if st.server.Count() > 0 {
			ch <- st.server.Metric(graphServerTimes, buckets, e.client, e.server)
		}
		if st.client.Count() > 0 {
			ch <- st.client.Metric(graphClientTimes, buckets, e.client, e.server)
		}
	}
}

// serviceName is how the service graph names a workload: namespace/name in
// Kubernetes, the name alone outside.
func serviceName(namespace, name string) string {
	if namespace == "" {
		return name
	}
	return namespace + "/" + name
}
