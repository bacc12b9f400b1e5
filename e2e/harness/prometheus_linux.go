package harness

import (
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Prometheus is Debian's Prometheus 2.42 on loopback: the remote-write
// target (Mimir's role; same protocol), a scraper of the agent, and a rule
// evaluator sending alerts to an Alertmanager.
type Prometheus struct{ *Backend }

// PromConfig says what a test's Prometheus does besides taking remote writes.
type PromConfig struct {
	Scrape       []string          // host:port of /metrics endpoints to scrape
	TargetLabels map[string]string // added to every scraped series (e.g. cluster)
	Interval     time.Duration     // scrape and rule evaluation; default 1s
	Rules        []string          // rule files to load
	Alertmanager string            // host:port to send alerts to; "" none
}

// StartPrometheus runs Prometheus until the test ends.
func StartPrometheus(t *testing.T, c PromConfig) *Prometheus {
	p := NewPrometheus(t, c)
	p.Start()
	return p
}

// NewPrometheus prepares Prometheus's port, configuration and data without
// starting it.
func NewPrometheus(t *testing.T, c PromConfig) *Prometheus {
	binary := debian(t, "prometheus", "prometheus")
	dir := t.TempDir()
	if c.Interval <= 0 {
		c.Interval = time.Second
	}
	cfg := fmt.Sprintf("global: {scrape_interval: %s, evaluation_interval: %[1]s}\n", c.Interval)
	if len(c.Rules) > 0 {
		cfg += "rule_files: [" + quoted(c.Rules) + "]\n"
	}
	if c.Alertmanager != "" {
		cfg += fmt.Sprintf("alerting: {alertmanagers: [{static_configs: [{targets: [%q]}]}]}\n", c.Alertmanager)
	}
	if len(c.Scrape) > 0 {
		var labels []string
		for k, v := range c.TargetLabels {
			labels = append(labels, fmt.Sprintf("%s: %q", k, v))
		}
		cfg += fmt.Sprintf("scrape_configs: [{job_name: strata, static_configs: [{targets: [%s], labels: {%s}}]}]\n",
			quoted(c.Scrape), strings.Join(labels, ", "))
	}
	path := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	b := newBackend(t, "prometheus", "/-/ready", binary, "--config.file="+path, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--web.enable-remote-write-receiver", "--enable-feature=exemplar-storage",
		// The first alert reaches Alertmanager in seconds, not a minute.
		"--rules.alert.resend-delay=1s", "--log.level=warn")
	b.Addr = addr
	return &Prometheus{b}
}

func quoted(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// WriteURL is where remote write goes.
func (p *Prometheus) WriteURL() string { return "http://" + p.Addr + "/api/v1/write" }

// WaitScraping waits until Prometheus has scraped target (host:port) once,
// successfully: a test that reads a rate of what it makes needs a sample
// from before it, and Prometheus's first scrape can come seconds after it
// reports ready.
func (p *Prometheus) WaitScraping(t *testing.T, target string, within time.Duration) {
	t.Helper()
	q := fmt.Sprintf("up{instance=%q} == 1", target)
	deadline := time.Now().Add(within)
	for {
		s, err := p.Query(q)
		if err == nil && len(s) > 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("Prometheus has not scraped %s within %v (%s: %v, %v)", target, within, q, s, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Sample is one series of an instant query.
type Sample struct {
	Labels map[string]string
	Value  string
}

// Query runs a PromQL instant query now.
func (p *Prometheus) Query(promql string) ([]Sample, error) { return p.QueryAt(promql, time.Time{}) }

// QueryAt runs a PromQL instant query evaluated at a past moment (the zero
// time: now), as a dashboard showing that moment would.
func (p *Prometheus) QueryAt(promql string, at time.Time) ([]Sample, error) {
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	params := url.Values{"query": {promql}}
	if !at.IsZero() {
		params.Set("time", fmt.Sprintf("%.3f", float64(at.UnixMilli())/1000))
	}
	if err := p.call("POST", "/api/v1/query", params, nil, &r); err != nil {
		return nil, err
	}
	var out []Sample
	for _, s := range r.Data.Result {
		v, _ := s.Value[1].(string)
		out = append(out, Sample{Labels: s.Metric, Value: v})
	}
	return out, nil
}

// Exemplar is one exemplar Prometheus stored.
type Exemplar struct {
	Series map[string]string
	Labels map[string]string
	Value  string
}

// Exemplars queries the exemplars of a selector over the last hour.
func (p *Prometheus) Exemplars(selector string) ([]Exemplar, error) {
	var r struct {
		Data []struct {
			Series    map[string]string `json:"seriesLabels"`
			Exemplars []struct {
				Labels map[string]string `json:"labels"`
				Value  string            `json:"value"`
			} `json:"exemplars"`
		} `json:"data"`
	}
	now := time.Now()
	err := p.call("POST", "/api/v1/query_exemplars", url.Values{"query": {selector},
		"start": {fmt.Sprint(now.Add(-time.Hour).Unix())}, "end": {fmt.Sprint(now.Add(time.Minute).Unix())}}, nil, &r)
	var out []Exemplar
	for _, s := range r.Data {
		for _, e := range s.Exemplars {
			out = append(out, Exemplar{Series: s.Series, Labels: e.Labels, Value: e.Value})
		}
	}
	return out, err
}

// RuleAlert is an alert as Prometheus's rule evaluation holds it.
type RuleAlert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	State       string            `json:"state"` // pending or firing
}

// Alerts lists the alerts the loaded rules hold now.
func (p *Prometheus) Alerts() ([]RuleAlert, error) {
	var r struct {
		Data struct {
			Alerts []RuleAlert `json:"alerts"`
		} `json:"data"`
	}
	err := p.call("GET", "/api/v1/alerts", nil, nil, &r)
	return r.Data.Alerts, err
}
