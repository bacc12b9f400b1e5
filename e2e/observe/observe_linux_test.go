package observe_test

import (
	"context"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/stratanet/strata/dashboards"
	"github.com/stratanet/strata/e2e/cluster"
	"github.com/stratanet/strata/e2e/harness"
)

// rounds is how many times each client runs its loop: about a second and a
// half each, so the traffic lasts ~100 s and the rules' 5-minute rates
// stay above their floors until the 2-minute alerts fire.
const rounds = 60

// The outside world: an HTTP API reached by its name (resolved by the
// cluster's dnsmasq), a resolver that answers SERVFAIL, and an address
// where nothing answers DNS.
const (
	twilioIP = "10.250.1.10"
	faultDNS = "10.250.0.54"
	deadDNS  = "10.250.0.55"
)

// TestDashboardsOnRealData: the shop scenario below, then every panel query
// of every dashboard returns data, the expected ones the scenario's exact
// counts, every Loki panel's streams exist, and exactly the failing edges
// page through Alertmanager.
//
// frontend (Job) -> backend Service: 3 GET /api/items/{id} a round, healthy
// frontend -> http://api.twilio.com (outside): 1 GET a round, healthy
// checkout (Job) -> payments Service: 2 GET /api/orders/{id} (200), 1 GET
// /api/pay (500), 1 GET /api/report (200 after 300 ms) a round
// checkout -> ledger Service: targetPort wrong, 1 connect refused a round
// checkout -> inventory Service: 1 connection reset after its request a round
// checkout DNS: NXDOMAIN, SERVFAIL and a timeout a round
// batch/nightly (Job): 1 GET to backend a round, its namespace past the budget
func TestDashboardsOnRealData(t *testing.T) {
	start := time.Now()
	c := cluster.Start(t)
	logs := harness.StartVictoriaLogs(t)
	am := harness.StartAlertmanager(t)
	// One namespace for sources: the batch Job's folds into ~other, so the
	// agent dashboard's folding panel has data.
	conf := filepath.Join(t.TempDir(), "strata.yaml")
	writeFile(t, conf, "label_budgets: {source_namespace: 1, qname: 1000000, destination_workload: 1000000}\n")
	agent := harness.StartAgent(t, filepath.Join(bin, "strata-agent"), "--config", conf,
		"--kubernetes=on", "--kubeconfig", c.Kubeconfig, "--sweep-interval", "1s", "--http=on", "--dns-timeout", "1s",
		"--cluster", "e2e", "--loki-url", logs.PushURL(), "--loki-tenant", logs.Tenant)
	rules := t.TempDir()
	var files []string
	for name, b := range dashboards.RuleFiles() {
		files = append(files, filepath.Join(rules, name))
		writeFile(t, files[len(files)-1], string(b))
	}
	prom := harness.StartPrometheus(t, harness.PromConfig{Scrape: []string{agent.Addr},
		TargetLabels: map[string]string{"cluster": "e2e"}, Interval: time.Second, Rules: files, Alertmanager: am.Addr})

	c.External("api.twilio.com", twilioIP, filepath.Join(bin, "httpserver"), "-listen", ":80")
	c.External("", faultDNS, filepath.Join(bin, "dnsfault"), "-listen", ":53", "-rcode", "SERVFAIL")
	c.External("", deadDNS) // nothing listens: queries go unanswered
	c.Apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: batch}\n")
	backend := service(t, c, "backend", 2, 8080, "httpserver", "-listen", ":8080")
	payments := service(t, c, "payments", 1, 8080, "httpserver", "-listen", ":8080", "-route", "/api/pay=500", "-route", "/api/report=200@300ms")
	ledger := service(t, c, "ledger", 1, 9090, "tcpserver", "-listen", ":8080") // the Service points at a port nobody listens on
	inventory := service(t, c, "inventory", 1, 8080, "tcpserver", "-listen", ":8080", "-reset")

	// The fold counter is read as a rate: Prometheus must hold a sample
	// from before the traffic.
	prom.WaitScraping(t, agent.Addr, 30*time.Second)
	b := func(name string) string { return filepath.Join(bin, name) }
	trafficStart := time.Now()
	job(t, c, "shop", "frontend", fmt.Sprintf(`for i in $(seq 1 %d); do
%[2]s -url http://%[3]s/api/items/$i -n 3 >/dev/null
%[2]s -url http://api.twilio.com/v1/messages >/dev/null
sleep 1
done`, rounds, b("httpclient"), backend))
	// checkout starts at once: its first refused connect and reset may come
	// before the API has its pod's address, and wait for the pod's name as
	// its connections do (agent/flow one-offs). It ends with a query that
	// times out after the pod is gone: named as it was asked (dnsflow).
	job(t, c, "shop", "checkout", fmt.Sprintf(`for i in $(seq 1 %d); do
%[2]s -url http://%[3]s/api/orders/$i -n 2 >/dev/null
%[2]s -url http://%[3]s/api/pay >/dev/null
%[2]s -url http://%[3]s/api/report >/dev/null
%[4]s -connect %[5]s:80 -allow-fail 2>/dev/null
%[4]s -connect %[6]s:80 -allow-fail 2>/dev/null
%[7]s nosuch.example.com >/dev/null
%[7]s -server %[8]s:53 broken.example.com >/dev/null
%[7]s -server %[9]s:53 -timeout 1s gone.example.com >/dev/null 2>&1
sleep 1
done`, rounds, b("httpclient"), payments, b("tcpclient"), ledger, inventory, b("dnsquery"), faultDNS, deadDNS))
	c.WaitRunning("shop", "job-name=frontend", 1)
	c.WaitRunning("shop", "job-name=checkout", 1)
	nightly := time.Now()
	job(t, c, "batch", "nightly", fmt.Sprintf(`for i in $(seq 1 %d); do
%s -url http://%s/api/items/$i >/dev/null
sleep 1
done`, rounds, b("httpclient"), backend))
	for _, j := range []struct{ ns, name string }{{"batch", "nightly"}, {"shop", "frontend"}, {"shop", "checkout"}} {
		waitJob(t, c, j.ns, j.name, 4*time.Minute)
	}
	trafficEnd := time.Now()
	t.Logf("traffic: %d rounds in %v", rounds, trafficEnd.Sub(trafficStart).Round(time.Second))

	exactCounts(t, prom)
	everyPanel(t, prom, agent.Addr, trafficEnd.Add(-3*time.Second))
	panelRows(t, prom, agent.Addr, trafficEnd.Add(-3*time.Second))
	// nightly's namespace folds when its first connection is named.
	folded(t, prom, agent.Addr, nightly.Add(30*time.Second))
	lokiPanels(t, logs)
	alerts(t, prom, am, trafficStart.Add(3*time.Minute))
	t.Logf("run time %v", time.Since(start).Round(time.Second))
}

// service is a Deployment of n pods running a test server on port 8080
// behind a Service in shop (port 80 -> targetPort), and its ClusterIP.
func service(t *testing.T, c *cluster.Cluster, name string, n, targetPort int, cmd string, args ...string) string {
	t.Helper()
	argv := append([]string{filepath.Join(bin, cmd)}, args...)
	q := make([]string, len(argv))
	for i, a := range argv {
		q[i] = strconv.Quote(a)
	}
	c.Apply(fmt.Sprintf(`
apiVersion: apps/v1
kind: Deployment
metadata: {name: %[1]s, namespace: shop}
spec:
  replicas: %[2]d
  selector: {matchLabels: {app: %[1]s}}
  template:
    metadata: {labels: {app: %[1]s}}
    spec:
      containers:
      - {name: server, image: local/%[3]s, command: [%[4]s]}
---
apiVersion: v1
kind: Service
metadata: {name: %[1]s, namespace: shop}
spec:
  selector: {app: %[1]s}
  ports: [{port: 80, targetPort: %[5]d}]
`, name, n, cmd, strings.Join(q, ", "), targetPort))
	c.WaitRunning("shop", "app="+name, n)
	svc, err := c.Client.CoreV1().Services("shop").Get(context.Background(), name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return svc.Spec.ClusterIP
}

// job runs a shell script once in a Job's pod.
func job(t *testing.T, c *cluster.Cluster, ns, name, script string) {
	t.Helper()
	c.Apply(fmt.Sprintf(`
apiVersion: batch/v1
kind: Job
metadata: {name: %[2]s, namespace: %[1]s}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: main, image: local/shell, command: ["sh", "-c", %[3]s]}
`, ns, name, strconv.Quote(script)))
}

func waitJob(t *testing.T, c *cluster.Cluster, ns, name string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	for time.Now().Before(deadline) {
		j, err := c.Client.BatchV1().Jobs(ns).Get(context.Background(), name, metav1.GetOptions{})
		if err == nil && j.Status.Succeeded == 1 {
			return
		}
		if err == nil && j.Status.Failed > 0 {
			t.Fatalf("job %s/%s failed", ns, name)
		}
		time.Sleep(500 * time.Millisecond)
	}
	t.Fatalf("job %s/%s did not finish within %v", ns, name, within)
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

// The scenario's values for the dashboards' variables.
var base = map[string]string{"cluster": "e2e", "namespace": "shop", "dependency": "api.twilio.com"}

// views are the variable sets a query is tried with: a dashboard of one
// workload shows its inbound panels for a server and its outbound ones for
// a client, so a panel must have data for at least one of them.
func views(dashboard, instance string) []map[string]string {
	with := func(kv ...string) map[string]string {
		m := map[string]string{"instance": instance}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	switch dashboard {
	case "strata-workload":
		var out []map[string]string
		for _, w := range []string{"frontend", "backend", "checkout", "payments", "ledger", "inventory"} {
			out = append(out, with("workload", w))
		}
		return out
	case "strata-dns":
		return []map[string]string{with("workload", "checkout"), with("workload", "frontend")}
	}
	return []map[string]string{with()}
}

// scenarioValues are what each variable's list must offer.
var scenarioValues = map[string][]string{
	"cluster":    {"e2e"},
	"namespace":  {"shop"},
	"workload":   {"frontend", "backend", "checkout", "payments"},
	"dependency": {"api.twilio.com"},
}

// tempoServiceMap is what Grafana's Tempo data source asks Prometheus for
// a serviceMap query (Grafana itself cannot run here): request totals,
// failures and server time per client and server.
func tempoServiceMap(filter string) []string {
	var out []string
	for _, m := range []string{"traces_service_graph_request_total", "traces_service_graph_request_failed_total",
		"traces_service_graph_request_server_seconds_sum"} {
		out = append(out, fmt.Sprintf("sum by (client, server) (rate(%s%s[$__range]))", m, filter))
	}
	return out
}

// everyPanel runs every Prometheus query of every dashboard at the moment
// `at` (the traffic's last seconds), with the scenario's variables, and
// wants a result with a number in it (not only NaN) from each.
func everyPanel(t *testing.T, prom *harness.Prometheus, instance string, at time.Time) {
	qs, err := dashboards.AllQueries()
	if err != nil {
		t.Fatal(err)
	}
	var ran int
	for _, q := range qs {
		if q.Kind == dashboards.KindLoki {
			continue
		}
		name := fmt.Sprintf("%s / %s %s", q.Dashboard, q.Panel, q.RefID)
		if q.Label != "" {
			// A variable's list: label_values(match, label).
			want := scenarioValues[strings.TrimPrefix(q.Panel, "$")]
			switch {
			case q.Panel == "$instance":
				want = []string{instance}
			case q.Dashboard == "strata-dns" && q.Panel == "$workload":
				want = []string{"checkout", "frontend"} // the clients that resolve names
			}
			expr := dashboards.Substitute(fmt.Sprintf("count by (%s) (%s)", q.Label, q.Match), views(q.Dashboard, instance)[0])
			got := map[string]bool{}
			samples, err := prom.QueryAt(expr, at)
			if err != nil {
				t.Errorf("%s: %s: %v", name, expr, err)
				continue
			}
			for _, s := range samples {
				got[s.Labels[q.Label]] = true
			}
			for _, w := range want {
				if !got[w] {
					t.Errorf("%s: %s offers %v, not %q", name, expr, keys(got), w)
				}
			}
			if len(want) == 0 {
				t.Errorf("%s: no scenario value listed for this variable", name)
			}
			ran++
			continue
		}
		exprs := []string{q.Expr}
		if q.Kind == dashboards.KindTempo {
			filter := strings.TrimSpace(strings.TrimPrefix(q.Expr, "serviceMap"))
			exprs = tempoServiceMap(filter)
		}
		for _, e := range exprs {
			var tried []string
			ok := false
			for _, vars := range views(q.Dashboard, instance) {
				expr := dashboards.Substitute(e, vars)
				samples, err := prom.QueryAt(expr, at)
				if err != nil {
					t.Errorf("%s: %s: %v", name, expr, err)
					break
				}
				if hasNumber(samples) {
					ok = true
					t.Logf("%s: %d series with %v, e.g. %v = %s", name, len(samples), vars["workload"], samples[0].Labels, samples[0].Value)
					break
				}
				tried = append(tried, fmt.Sprintf("%s -> %v", expr, samples))
			}
			ran++
			if !ok {
				t.Errorf("%s returns no data:\n  %s", name, strings.Join(tried, "\n  "))
			}
		}
	}
	t.Logf("%d Prometheus queries of %d dashboard queries ran with data", ran, len(qs))
}

func hasNumber(samples []harness.Sample) bool {
	for _, s := range samples {
		if v, err := strconv.ParseFloat(s.Value, 64); err == nil && !math.IsNaN(v) {
			return true
		}
	}
	return false
}

func keys(m map[string]bool) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// counterView turns a panel's rate into the counter itself: the same
// selector and grouping, the whole run's count (every series was born in
// this run, so the counter is exact where increase() would extrapolate).
var rateOf = regexp.MustCompile(`rate\(([^\[\]]+)\[\$__(?:rate_interval|range)\]\)`)

func counterView(expr string) string { return rateOf.ReplaceAllString(expr, "$1") }

// panelQuery is the query of one panel target.
func panelQuery(t *testing.T, dashboard, panel, ref string) dashboards.Query {
	t.Helper()
	qs, err := dashboards.AllQueries()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Dashboard == dashboard && q.Panel == panel && (q.RefID == ref || ref == "") {
			return q
		}
	}
	t.Fatalf("no panel %q (%s) on %s", panel, ref, dashboard)
	return dashboards.Query{}
}

// exact is one panel's expected totals: its query as counters, with the
// scenario's variables, each series named by the labels it groups by.
type exact struct {
	dashboard, panel, ref string
	vars                  map[string]string
	by                    []string
	want                  map[string]float64
}

// exactCounts waits until every expected panel shows the scenario's exact
// totals (the last connections close and are counted within seconds).
func exactCounts(t *testing.T, prom *harness.Prometheus) {
	const r = rounds
	w := func(workload string) map[string]string { return map[string]string{"workload": workload} }
	cases := []exact{
		{"strata-workload", "Inbound requests by client", "A", w("backend"), []string{"source_namespace", "source_workload"},
			map[string]float64{"shop/frontend": 3 * r, "~other/nightly": r}},
		{"strata-workload", "Inbound requests by status", "A", w("payments"), []string{"method", "route", "status_code"},
			map[string]float64{"GET//api/orders/{id}/200": 2 * r, "GET//api/pay/500": r, "GET//api/report/200": r}},
		{"strata-workload", "Inbound error ratio by client", "A", w("payments"), []string{"source_namespace", "source_workload"},
			map[string]float64{"shop/checkout": 0.25}},
		{"strata-workload", "Inbound error ratio by client", "A", w("backend"), []string{"source_namespace", "source_workload"},
			map[string]float64{"shop/frontend": 0, "~other/nightly": 0}},
		{"strata-workload", "Outbound requests by server", "A", w("checkout"), []string{"destination_namespace", "destination_workload"},
			map[string]float64{"shop/payments": 4 * r}},
		{"strata-workload", "Outbound requests by server", "A", w("frontend"), []string{"destination_namespace", "destination_workload"},
			map[string]float64{"shop/backend": 3 * r, "/api.twilio.com": r}},
		{"strata-workload", "Outbound error ratio by server", "A", w("checkout"), []string{"destination_namespace", "destination_workload"},
			map[string]float64{"shop/payments": 0.25}},
		{"strata-workload", "Outbound connections by server and result", "A", w("frontend"), []string{"destination_workload", "result"},
			map[string]float64{"backend/success": r, "api.twilio.com/success": r}},
		{"strata-workload", "Outbound failed connections", "A", w("checkout"), []string{"destination_workload", "result"},
			map[string]float64{"ledger/refused": r}},
		{"strata-workload", "Inbound connections by client", "A", w("inventory"), []string{"source_workload"},
			map[string]float64{"checkout": r}},
		{"strata-workload", "Resets by peer", "A", w("checkout"), []string{"destination_workload", "direction"},
			map[string]float64{"inventory/received": r}},
		{"strata-workload", "Resets by peer", "B", w("inventory"), []string{"source_workload", "direction"},
			map[string]float64{"checkout/sent": r}},
		{"strata-dns", "Queries by rcode", "A", w("checkout"), []string{"rcode"},
			map[string]float64{"NXDOMAIN": r, "SERVFAIL": r, "timeout": r}},
		{"strata-dns", "Top SERVFAIL names", "A", w("checkout"), []string{"qname", "source_namespace", "source_workload"},
			map[string]float64{"broken.example.com/shop/checkout": r}},
		{"strata-dns", "Top NXDOMAIN names", "A", w("checkout"), []string{"qname", "source_namespace", "source_workload"},
			map[string]float64{"nosuch.example.com/shop/checkout": r}},
		// Go's resolver asks for A and AAAA before each call; dnsmasq knows
		// the name (A only): NOERROR both.
		{"strata-dns", "Query types", "A", w("frontend"), []string{"qtype", "rcode"},
			map[string]float64{"A/NOERROR": r, "AAAA/NOERROR": r}},
		{"strata-external", "DNS answers for the dependency's name", "A", nil, []string{"qname", "rcode"},
			map[string]float64{"api.twilio.com/NOERROR": 2 * r}},
		{"strata-external", "Calls by dependency", "A", nil, []string{"destination_workload"},
			map[string]float64{"api.twilio.com": r}},
		{"strata-external", "Error ratio by dependency", "A", nil, []string{"destination_workload"},
			map[string]float64{"api.twilio.com": 0}},
		// The outside API runs on this machine, so the agent sees its
		// server end too (a host process, named httpserver) and the graph
		// counts the request once, there; the client's edge stays at 0.
		{"strata-overview", "Service graph edges", "A", nil, []string{"client", "server"},
			map[string]float64{"shop/frontend/shop/backend": 3 * r, "~other/nightly/shop/backend": r,
				"shop/frontend/httpserver": r, "shop/frontend/api.twilio.com": 0, "shop/checkout/shop/payments": 4 * r}},
		{"strata-overview", "Service graph edges", "B", nil, []string{"client", "server"},
			map[string]float64{"shop/frontend/shop/backend": 0, "~other/nightly/shop/backend": 0,
				"shop/frontend/httpserver": 0, "shop/frontend/api.twilio.com": math.NaN(), "shop/checkout/shop/payments": 0.25}},
	}
	deadline := time.Now().Add(45 * time.Second)
	for _, ex := range cases {
		q := panelQuery(t, ex.dashboard, ex.panel, ex.ref)
		vars := map[string]string{}
		for k, v := range base {
			vars[k] = v
		}
		for k, v := range ex.vars {
			vars[k] = v
		}
		// topk(…) > 0 on a counter keeps its shape; the counters are exact.
		expr := dashboards.Substitute(counterView(q.Expr), vars)
		var got map[string]float64
		for {
			samples, err := prom.Query(expr)
			if err != nil {
				t.Fatalf("%s / %s: %v", ex.dashboard, ex.panel, err)
			}
			got = map[string]float64{}
			for _, s := range samples {
				var key []string
				for _, l := range ex.by {
					key = append(key, s.Labels[l])
				}
				v, _ := strconv.ParseFloat(s.Value, 64)
				if c := s.Labels["client"]; c != "" && !strings.HasPrefix(c, "shop/") && !strings.HasPrefix(c, "~other/") {
					continue // the machine's own processes (Prometheus scraping the agent, …)
				}
				got[strings.Join(key, "/")] = v
			}
			if equal(got, ex.want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		if !equal(got, ex.want) {
			t.Errorf("%s / %s %s (%v): %s\n  = %v\n  want %v", ex.dashboard, ex.panel, ex.ref, ex.vars, expr, got, ex.want)
		} else {
			t.Logf("%s / %s %s %v = %v", ex.dashboard, ex.panel, ex.ref, ex.vars, got)
		}
	}
}

func equal(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range b {
		if g, ok := a[k]; !ok || !(math.Abs(g-v) <= 1e-9 || math.IsNaN(g) && math.IsNaN(v)) {
			return false
		}
	}
	return true
}

// lokiPanels: every Loki panel's stream selector, with the scenario's
// variables, matches streams the agent pushed to VictoriaLogs, and the
// events are the scenario's, one for each failure.
func lokiPanels(t *testing.T, logs *harness.VictoriaLogs) {
	qs, err := dashboards.AllQueries()
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range qs {
		if q.Kind != dashboards.KindLoki {
			continue
		}
		if q.Selector == "" {
			t.Errorf("%s / %s: no stream selector in %s", q.Dashboard, q.Panel, q.Expr)
			continue
		}
		sel := dashboards.Substitute(q.Selector, base)
		lines, err := logs.Logs(sel)
		if err != nil {
			t.Errorf("%s / %s: %s: %v", q.Dashboard, q.Panel, sel, err)
			continue
		}
		if len(lines) == 0 {
			t.Errorf("%s / %s: no stream matches %s", q.Dashboard, q.Panel, sel)
			continue
		}
		t.Logf("%s / %s: %s matches %d lines", q.Dashboard, q.Panel, sel, len(lines))
	}

	// The events behind those panels, counted by what the lines say.
	type count struct {
		query, field string
		want         map[string]int
	}
	const r = rounds
	for _, c := range []count{
		{`{job="strata",cluster="e2e",event="dns_error"} | unpack_logfmt | filter source_workload:=checkout`, "rcode",
			map[string]int{"NXDOMAIN": r, "SERVFAIL": r, "timeout": r}},
		{`{job="strata",cluster="e2e",event="connect_failed"} | unpack_logfmt | filter source_workload:=checkout`, "error",
			map[string]int{"refused": r}},
		// Both ends report a failed request: the server's line and the client's.
		{`{job="strata",cluster="e2e",event="http_error"} | unpack_logfmt | filter source_workload:=checkout`, "reporter",
			map[string]int{"client": r, "server": r}},
		{`{job="strata",cluster="e2e",event="http_error"} | unpack_logfmt | filter source_workload:=checkout reporter:=server`, "status_code",
			map[string]int{"500": r}},
	} {
		var got map[string]int
		deadline := time.Now().Add(30 * time.Second)
		for {
			lines, err := logs.Logs(c.query)
			if err != nil {
				t.Fatalf("%s: %v", c.query, err)
			}
			got = map[string]int{}
			for _, l := range lines {
				got[l.Fields[c.field]]++
			}
			if fmt.Sprint(got) == fmt.Sprint(c.want) || time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Second)
		}
		if fmt.Sprint(got) != fmt.Sprint(c.want) {
			t.Errorf("%s: by %s %v, want %v", c.query, c.field, got, c.want)
		}
	}
}

// alerts: the failing HTTP edge and the refused connects reach
// Alertmanager with their edge's labels, and nothing else does; no alert,
// not even pending, names the healthy edges.
func alerts(t *testing.T, prom *harness.Prometheus, am *harness.Alertmanager, deadline time.Time) {
	edge := map[string]string{"cluster": "e2e", "severity": "warning", "source_namespace": "shop", "source_workload": "checkout",
		"destination_namespace": "shop"}
	want := map[string]map[string]string{
		"StrataHTTPErrorRatioHigh": with(edge, "destination_workload", "payments", "reporter", "server"),
		"StrataTCPConnectFailing":  with(edge, "destination_workload", "ledger", "result", "refused"),
	}
	var got []harness.Alert
	for {
		var err error
		if got, err = am.Alerts(); err != nil {
			t.Fatal(err)
		}
		found := 0
		for _, a := range got {
			if w, ok := want[a.Labels["alertname"]]; ok && matches(a.Labels, w) {
				found++
			}
		}
		if found == len(want) {
			break
		}
		if time.Now().After(deadline) {
			pending, _ := prom.Alerts()
			t.Fatalf("Alertmanager holds %v; want %v (Prometheus: %v)", got, want, pending)
		}
		time.Sleep(2 * time.Second)
	}
	for _, a := range got {
		w, ok := want[a.Labels["alertname"]]
		if !ok || !matches(a.Labels, w) {
			t.Errorf("unexpected alert in Alertmanager: %v %v", a.Labels, a.Annotations)
			continue
		}
		if a.Status.State != "active" || !strings.HasPrefix(a.Annotations["description"], "shop/checkout -> shop/"+w["destination_workload"]+": ") ||
			!strings.Contains(a.Annotations["runbook_url"], "docs/runbooks.md#"+strings.ToLower(a.Labels["alertname"])) {
			t.Errorf("alert %v: state %s, annotations %v", a.Labels, a.Status.State, a.Annotations)
		}
		t.Logf("Alertmanager: %s %v: %s", a.Labels["alertname"], a.Labels, a.Annotations["description"])
	}
	held, err := prom.Alerts()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range held {
		if a.Labels["source_workload"] == "frontend" || a.Labels["destination_workload"] == "backend" ||
			a.Labels["destination_workload"] == "api.twilio.com" {
			t.Errorf("a healthy edge raised %s (%s): %v", a.Labels["alertname"], a.State, a.Labels)
		}
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		out[k] = v
	}
	for i := 0; i < len(kv); i += 2 {
		out[kv[i]] = kv[i+1]
	}
	return out
}

// matches: every wanted label has its value.
func matches(have, want map[string]string) bool {
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// row is a series a panel must show at a moment of the traffic: the
// labels it names the failing edge with, and its value's range.
type row struct {
	dashboard, panel, ref string
	vars                  map[string]string
	labels                map[string]string
	lo, hi                float64
}

// panelRows checks what the overview's failing-edge tables and the latency
// panels show while the scenario runs: the failing edges at their rates,
// and never a healthy one.
func panelRows(t *testing.T, prom *harness.Prometheus, instance string, at time.Time) {
	checkout := map[string]string{"source_namespace": "shop", "source_workload": "checkout"}
	inf := math.Inf(1)
	w := func(workload string) map[string]string { return map[string]string{"workload": workload} }
	rows := []row{
		// One 500 in every four requests; a 5-minute window may cut a round.
		{"strata-overview", "HTTP edges with errors", "A", nil, with(checkout, "destination_workload", "payments", "reporter", "server"), 0.22, 0.28},
		{"strata-overview", "Failed connects", "A", nil, with(checkout, "destination_workload", "ledger", "result", "refused"), 0.1, inf},
		{"strata-overview", "Resets", "A", nil, with(checkout, "destination_workload", "inventory", "direction", "received"), 0.1, inf},
		{"strata-overview", "DNS errors", "A", nil, with(checkout, "qname", "nosuch.example.com", "rcode", "NXDOMAIN"), 0.1, inf},
		{"strata-overview", "DNS errors", "A", nil, with(checkout, "qname", "broken.example.com", "rcode", "SERVFAIL"), 0.1, inf},
		{"strata-overview", "DNS errors", "A", nil, with(checkout, "qname", "gone.example.com", "rcode", "timeout"), 0.1, inf},
		{"strata-dns", "Unanswered queries by client", "A", w("checkout"), checkout, 0.1, inf},
		// A quarter of payments' requests take 300 ms: p95 and p99 fall in
		// the 0.25-0.5 s bucket, the median in the first milliseconds.
		{"strata-workload", "Inbound latency", "A", w("payments"), nil, 0, 0.01},
		{"strata-workload", "Inbound latency", "B", w("payments"), nil, 0.25, 0.5},
		{"strata-workload", "Inbound latency", "C", w("payments"), nil, 0.25, 0.5},
		{"strata-workload", "Outbound latency p99 by server", "A", w("checkout"), map[string]string{"destination_workload": "payments"}, 0.25, 0.5},
		{"strata-workload", "Inbound latency", "C", w("backend"), nil, 0, 0.05},
		// The agent's own: the batch Job's namespace went past the budget of
		// one, events went to Loki, and the HTTP and DNS probes run.
		{"strata-agent", "Export sent, failed and dropped", "A", nil, map[string]string{"exporter": "loki"}, 1e-9, inf},
		{"strata-agent", "Probe modes", "A", nil, map[string]string{"probe": "http"}, 1, 1},
		{"strata-agent", "Probe modes", "A", nil, map[string]string{"probe": "dns"}, 1, 1},
	}
	for _, r := range rows {
		q := panelQuery(t, r.dashboard, r.panel, r.ref)
		vars := with(base, "instance", instance)
		for k, v := range r.vars {
			vars[k] = v
		}
		expr := dashboards.Substitute(q.Expr, vars)
		samples, err := prom.QueryAt(expr, at)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, s := range samples {
			if !matches(s.Labels, r.labels) {
				continue
			}
			found = true
			if v, _ := strconv.ParseFloat(s.Value, 64); !(v >= r.lo && v <= r.hi) {
				t.Errorf("%s / %s %s %v: %v = %v, want %v..%v", r.dashboard, r.panel, r.ref, r.vars, s.Labels, v, r.lo, r.hi)
			} else {
				t.Logf("%s / %s %s %v: %v = %.3f", r.dashboard, r.panel, r.ref, r.vars, s.Labels, v)
			}
		}
		if !found {
			t.Errorf("%s / %s %s %v: no series %v in %s -> %v", r.dashboard, r.panel, r.ref, r.vars, r.labels, expr, samples)
		}
	}
	// The failing-edge tables hold nothing of the healthy edges.
	for _, panel := range []string{"HTTP edges with errors", "Failed connects", "Resets", "DNS errors"} {
		samples, err := prom.QueryAt(dashboards.Substitute(panelQuery(t, "strata-overview", panel, "A").Expr, base), at)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range samples {
			if s.Labels["source_workload"] == "frontend" || s.Labels["source_workload"] == "nightly" {
				t.Errorf("strata-overview / %s lists a healthy edge: %v = %s", panel, s.Labels, s.Value)
			}
		}
	}
}

// folded: the agent dashboard shows the namespace budget of one folding
// the batch Job's namespace, in the minute it started.
func folded(t *testing.T, prom *harness.Prometheus, instance string, at time.Time) {
	expr := dashboards.Substitute(panelQuery(t, "strata-agent", "Label values folded into ~other", "A").Expr, with(base, "instance", instance))
	samples, err := prom.QueryAt(expr, at)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range samples {
		if v, _ := strconv.ParseFloat(s.Value, 64); s.Labels["label"] == "source_namespace" && v > 0 {
			t.Logf("strata-agent / Label values folded into ~other: %v = %s", s.Labels, s.Value)
			return
		}
	}
	t.Errorf("strata-agent / Label values folded into ~other: no source_namespace folds 30 s after the batch Job started: %s -> %v", expr, samples)
	// When the count moved, if it did: the raw counter every 15 s.
	for d := -30 * time.Second; d <= 150*time.Second; d += 15 * time.Second {
		raw, _ := prom.QueryAt(`strata_agent_overflow_total{label="source_namespace"}`, at.Add(d))
		up, _ := prom.QueryAt(`up`, at.Add(d))
		took, _ := prom.QueryAt(`scrape_duration_seconds`, at.Add(d))
		t.Logf("  job start %+v: %v (up %v, scrape took %v)", d+30*time.Second, raw, up, took)
	}
}
