package dashboards

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"
)

// scenario is what a test fills the variables with.
var scenario = map[string]string{
	"cluster": "c1", "namespace": "shop", "workload": "cart", "dependency": "api.twilio.com", "instance": "node-a:9810",
}

// documented are the metric names docs/metrics.md lists: a dashboard may
// query only what the agent is documented to serve.
func documented(t *testing.T) map[string]bool {
	b, err := os.ReadFile("../docs/metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range regexp.MustCompile("`((?:strata|traces)_[a-z_]+)").FindAllStringSubmatch(string(b), -1) {
		names[m[1]] = true
	}
	return names
}

// recorded are the recording rules' names.
func recorded(t *testing.T) map[string]bool {
	var f struct {
		Groups []struct {
			Rules []struct {
				Record string `yaml:"record"`
			} `yaml:"rules"`
		} `yaml:"groups"`
	}
	if err := yaml.Unmarshal(RuleFiles()["recording.yaml"], &f); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			names[r.Record] = true
		}
	}
	return names
}

// known says whether a selector's metric is served by the agent or recorded
// by our rules; histogram series are documented by their base name.
func known(name string, docs, rules map[string]bool) bool {
	if docs[name] || rules[name] {
		return true
	}
	for _, s := range []string{"_bucket", "_count", "_sum"} {
		if strings.HasSuffix(name, s) && docs[strings.TrimSuffix(name, s)] {
			return true
		}
	}
	return false
}

func TestDashboardsQueryOnlyWhatTheAgentServes(t *testing.T) {
	ds, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	docs, rules := documented(t), recorded(t)
	qs := Queries(ds)
	kinds := map[string]int{}
	for _, q := range qs {
		kinds[q.Kind]++
		where := q.Dashboard + " / " + q.Panel + " " + q.RefID
		switch q.Kind {
		case KindPrometheus:
			if !strings.Contains(q.Expr, C) && !strings.HasPrefix(q.Expr, "label_values(strata_agent_probe_info,") {
				t.Errorf("%s: no cluster filter: %s", where, q.Expr)
			}
			expr := q.Expr
			if strings.HasPrefix(q.Panel, "$") { // a variable: its series selector
				if q.Match == "" || q.Label == "" {
					t.Errorf("%s: variable query %s not split into match and label", where, q.Expr)
				}
				expr = q.Match
			}
			e, err := parser.ParseExpr(Substitute(expr, scenario))
			if err != nil {
				t.Errorf("%s: %v: %s", where, err, q.Expr)
				continue
			}
			parser.Inspect(e, func(n parser.Node, path []parser.Node) error {
				switch n := n.(type) {
				case *parser.VectorSelector:
					if !known(n.Name, docs, rules) {
						t.Errorf("%s: %s is neither in docs/metrics.md nor a recording rule", where, n.Name)
					}
					inRange := false
					if len(path) > 0 {
						_, inRange = path[len(path)-1].(*parser.MatrixSelector)
					}
					if !inRange && !strings.HasPrefix(q.Panel, "$") {
						if strings.HasSuffix(n.Name, "_total") || strings.HasSuffix(n.Name, "_bucket") || strings.HasSuffix(n.Name, "_count") {
							t.Errorf("%s: counter %s outside rate/increase", where, n.Name)
						}
					}
				case *parser.MatrixSelector:
					if !strings.Contains(q.Expr, "[$__rate_interval]") && !strings.Contains(q.Expr, "[$__range]") && !strings.Contains(q.Expr, "[5m]") {
						t.Errorf("%s: a range that is neither $__rate_interval nor $__range: %s", where, q.Expr)
					}
				}
				return nil
			})
		case KindLoki:
			if q.Selector == "" || !strings.Contains(q.Selector, `job="strata"`) || !strings.Contains(q.Selector, C) {
				t.Errorf("%s: stream selector %q lacks job or cluster", where, q.Selector)
			}
		}
	}
	// Exactly what the five dashboards hold: a panel added or dropped
	// shows here and in the e2e scenario's list.
	want := map[string]int{KindPrometheus: 88, KindLoki: 2, KindTempo: 1}
	for k, n := range want {
		if kinds[k] != n {
			t.Errorf("%d %s queries, want %d", kinds[k], k, n)
		}
	}
}

func TestEveryPanelHasTitleDescriptionUnitAndVariableDatasource(t *testing.T) {
	ds, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	uids := map[string]string{}
	for name, d := range ds {
		if d.Uid == nil || !strings.HasPrefix(*d.Uid, "strata-") {
			t.Errorf("%s: uid %v", name, d.Uid)
		} else if other, dup := uids[*d.Uid]; dup {
			t.Errorf("%s and %s share uid %s", name, other, *d.Uid)
		} else {
			uids[*d.Uid] = name
		}
		vars := map[string]bool{}
		for _, v := range d.Templating.List {
			vars[v.Name] = true
		}
		if !vars["cluster"] || !vars[PromVar] {
			t.Errorf("%s: variables %v lack cluster or %s", name, vars, PromVar)
		}
		for _, p := range d.Panels {
			if p.Panel == nil {
				continue
			}
			title := ""
			if p.Panel.Title != nil {
				title = *p.Panel.Title
			}
			if title == "" || p.Panel.Description == nil || *p.Panel.Description == "" {
				t.Errorf("%s: panel %q without title or description", name, title)
			}
			if p.Panel.FieldConfig == nil || p.Panel.FieldConfig.Defaults.Unit == nil || *p.Panel.FieldConfig.Defaults.Unit == "" {
				t.Errorf("%s: panel %q without unit", name, title)
			}
			if p.Panel.Datasource == nil || p.Panel.Datasource.Uid == nil || !strings.HasPrefix(*p.Panel.Datasource.Uid, "${") {
				t.Errorf("%s: panel %q data source is not a variable", name, title)
			} else if uid := strings.Trim(*p.Panel.Datasource.Uid, "${}"); !vars[uid] {
				t.Errorf("%s: panel %q uses $%s, which the dashboard lacks", name, title, uid)
			}
		}
	}
	if len(uids) != 5 {
		t.Errorf("%d dashboards, want 5", len(uids))
	}
}

// TestCommittedFilesAreFresh is make check-dashboards' check, in go test.
func TestCommittedFilesAreFresh(t *testing.T) {
	ds, err := Build()
	if err != nil {
		t.Fatal(err)
	}
	for name, d := range ds {
		want, err := Render(d)
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join("json", name))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("json/%s is stale: run make dashboards", name)
		}
		again, _ := Render(d)
		if !bytes.Equal(again, want) {
			t.Errorf("%s renders differently twice", name)
		}
	}
	want, err := PrometheusRule(RuleFiles())
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../manifests/components/monitoring/prometheusrule.yaml")
	if err != nil || !bytes.Equal(got, want) {
		t.Error("manifests/components/monitoring/prometheusrule.yaml is stale: run make dashboards")
	}
}

func TestPrometheusRuleHoldsEveryGroup(t *testing.T) {
	b, err := PrometheusRule(RuleFiles())
	if err != nil {
		t.Fatal(err)
	}
	var pr struct {
		Kind string
		Spec struct {
			Groups []struct {
				Name  string
				Rules []map[string]any
			}
		}
	}
	if err := yaml.Unmarshal(b, &pr); err != nil {
		t.Fatal(err)
	}
	var names []string
	rules := 0
	for _, g := range pr.Spec.Groups {
		names = append(names, g.Name)
		rules += len(g.Rules)
	}
	sort.Strings(names)
	if pr.Kind != "PrometheusRule" || strings.Join(names, ",") != "strata-agent,strata-dns,strata-dns-external,strata-edges,strata-http,strata-tcp" || rules != 34 {
		t.Errorf("kind %s, groups %v, %d rules; want PrometheusRule, 6 groups, 34 rules", pr.Kind, names, rules)
	}
}

func TestSubstitute(t *testing.T) {
	got := Substitute(`rate(x{cluster=~"$cluster", ns="$namespace", n="${name}"}[$__rate_interval]) [$__range]`,
		map[string]string{"cluster": "c1", "namespace": "shop", "name": "n1"})
	want := `rate(x{cluster=~"c1", ns="shop", n="n1"}[1m]) [5m]`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
	qs, err := AllQueries()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Dashboard == "strata-workload" && q.Panel == "$workload" && (q.Label != "workload" || q.Match != `strata_workload:tcp_active_connections:sum{cluster=~"$cluster", namespace=~"$namespace"}`) {
			t.Errorf("$workload split into %q and %q", q.Match, q.Label)
		}
	}
	if s := StreamSelector(WorkloadLogs); s != `{job="strata", cluster=~"$cluster"}` {
		t.Errorf("stream selector %q", s)
	}
}

// runbookAnchors are docs/runbooks.md's headings as GitHub anchors.
func runbookAnchors(t *testing.T, path string) map[string]bool {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	anchors := map[string]bool{}
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "## ") {
			anchors[strings.ToLower(strings.TrimPrefix(line, "## "))] = true
		}
	}
	return anchors
}

func TestEveryAlertHasSeveritySummaryDescriptionAndRunbook(t *testing.T) {
	anchors := runbookAnchors(t, "../docs/runbooks.md")
	var f struct {
		Groups []struct {
			Rules []struct {
				Alert       string
				Labels      map[string]string
				Annotations map[string]string
			}
		}
	}
	if err := yaml.Unmarshal(RuleFiles()["alerts.yaml"], &f); err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, g := range f.Groups {
		for _, r := range g.Rules {
			n++
			if s := r.Labels["severity"]; s != "warning" && s != "critical" {
				t.Errorf("%s: severity %q", r.Alert, s)
			}
			if s := r.Annotations["summary"]; s == "" || strings.Contains(s, "{{") || !strings.HasSuffix(s, ".") {
				t.Errorf("%s: summary %q must be plain and end with a period", r.Alert, s)
			}
			if !strings.Contains(r.Annotations["description"], "{{") {
				t.Errorf("%s: description is not templated", r.Alert)
			}
			want := "https://github.com/stratanet/strata/blob/main/docs/runbooks.md#" + strings.ToLower(r.Alert)
			if r.Annotations["runbook_url"] != want || !anchors[strings.ToLower(r.Alert)] {
				t.Errorf("%s: runbook_url %q, want %q with a section in docs/runbooks.md", r.Alert, r.Annotations["runbook_url"], want)
			}
			if len(r.Alert) > 40 {
				t.Errorf("%s: name longer than 40", r.Alert)
			}
		}
	}
	if n != 14 {
		t.Errorf("%d alerts, want 14", n)
	}
}
