package dashboards

import (
	"sort"
	"strings"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/loki"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/tempo"
)

// Query is one query a dashboard runs: a panel's target, or a variable's
// label_values. Expr still holds Grafana's variables ($cluster,
// $__rate_interval, …); Substitute fills them in.
type Query struct {
	Dashboard string `json:"dashboard"` // uid
	Panel     string `json:"panel"`     // panel title, or "$name" for a variable
	Kind      string `json:"kind"`      // prometheus, loki, tempo
	RefID     string `json:"refId,omitempty"`
	Expr      string `json:"expr"`
	Instant   bool   `json:"instant,omitempty"`
	// Selector is a Loki query's stream selector ({job="strata", …}),
	// the part a log store must match.
	Selector string `json:"selector,omitempty"`
	// Match and Label split a variable's label_values(MATCH, LABEL), for
	// Prometheus's /api/v1/label/LABEL/values?match[]=MATCH.
	Match string `json:"match,omitempty"`
	Label string `json:"label,omitempty"`
}

// AllQueries is Queries of every Strata dashboard.
func AllQueries() ([]Query, error) {
	ds, err := Build()
	if err != nil {
		return nil, err
	}
	return Queries(ds), nil
}

// Queries lists every query of every panel and every query variable of the
// given dashboards, in dashboard, panel and target order.
func Queries(ds map[string]dashboard.Dashboard) []Query {
	var names []string
	for n := range ds {
		names = append(names, n)
	}
	sort.Strings(names)
	var out []Query
	for _, n := range names {
		d := ds[n]
		uid := ""
		if d.Uid != nil {
			uid = *d.Uid
		}
		for _, v := range d.Templating.List {
			if v.Type == dashboard.VariableTypeQuery && v.Query != nil && v.Query.String != nil {
				q := Query{Dashboard: uid, Panel: "$" + v.Name, Kind: KindPrometheus, Expr: *v.Query.String}
				if inner, ok := strings.CutPrefix(q.Expr, "label_values("); ok {
					inner = strings.TrimSuffix(inner, ")")
					if i := strings.LastIndex(inner, ","); i > 0 {
						q.Match, q.Label = strings.TrimSpace(inner[:i]), strings.TrimSpace(inner[i+1:])
					}
				}
				out = append(out, q)
			}
		}
		var panels []dashboard.Panel
		for _, p := range d.Panels {
			if p.Panel != nil {
				panels = append(panels, *p.Panel)
			}
			if p.RowPanel != nil {
				panels = append(panels, p.RowPanel.Panels...)
			}
		}
		for _, p := range panels {
			title := ""
			if p.Title != nil {
				title = *p.Title
			}
			for _, t := range p.Targets {
				q := Query{Dashboard: uid, Panel: title}
				switch t := t.(type) {
				case prometheus.Dataquery:
					q.Kind, q.Expr, q.Instant = KindPrometheus, t.Expr, t.Instant != nil && *t.Instant
					if t.RefId != nil {
						q.RefID = *t.RefId
					}
				case loki.Dataquery:
					q.Kind, q.Expr, q.Selector = KindLoki, t.Expr, StreamSelector(t.Expr)
					if t.RefId != nil {
						q.RefID = *t.RefId
					}
				case tempo.Dataquery:
					q.Kind = KindTempo
					if t.QueryType != nil {
						q.Expr = *t.QueryType
					}
					if t.ServiceMapQuery != nil && t.ServiceMapQuery.String != nil {
						q.Expr += " " + *t.ServiceMapQuery.String
					}
					if t.RefId != nil {
						q.RefID = *t.RefId
					}
				default:
					continue
				}
				out = append(out, q)
			}
		}
	}
	return out
}

// StreamSelector is the {…} a LogQL query starts with.
func StreamSelector(logql string) string {
	if i := strings.Index(logql, "}"); strings.HasPrefix(logql, "{") && i > 0 {
		return logql[:i+1]
	}
	return ""
}

// Substitute fills Grafana's variables into a query: vars maps a name
// (cluster, namespace, __rate_interval, __range, …) to its value. Longer
// names go first so $namespace never eats $name. Unset interval variables
// default to 1m (__rate_interval, __interval) and 5m (__range).
func Substitute(expr string, vars map[string]string) string {
	all := map[string]string{"__rate_interval": "1m", "__interval": "1m", "__range": "5m"}
	for k, v := range vars {
		all[k] = v
	}
	var names []string
	for k := range all {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) })
	for _, k := range names {
		expr = strings.ReplaceAll(expr, "${"+k+"}", all[k])
		expr = strings.ReplaceAll(expr, "$"+k, all[k])
	}
	return expr
}
