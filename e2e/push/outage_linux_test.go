package push_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stratanet/strata/e2e/harness"
	"github.com/stratanet/strata/e2e/netlab"
)

// rssBound is what the agent may use while its backends fail, queues full:
// the memory limit manifests/ give the DaemonSet.
const rssBound = 200 << 20

// healthy checks what must hold in every outage: /metrics answers at once,
// memory stays bounded, queues stay within their configured sizes.
func healthy(t *testing.T, a *harness.Agent, queues map[string]float64) {
	t.Helper()
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get("http://" + a.Addr + "/metrics")
	if err != nil {
		t.Fatalf("/metrics during the outage: %v", err)
	}
	resp.Body.Close()
	if rss, err := a.RSS(); err != nil || rss > rssBound {
		t.Fatalf("agent RSS %d MiB (%v), bound %d MiB", rss>>20, err, rssBound>>20)
	}
	mfs, err := a.Scrape()
	if err != nil {
		t.Fatal(err)
	}
	for exp, bound := range queues {
		if v, _ := harness.ValueIn(t, mfs, "strata_agent_export_queue_length", labels{"exporter": exp}); v > bound {
			t.Fatalf("%s queue %v, bound %v", exp, v, bound)
		}
	}
}

// hold keeps checking health for d.
func hold(t *testing.T, a *harness.Agent, d time.Duration, queues map[string]float64) {
	t.Helper()
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(time.Second) {
		healthy(t, a, queues)
	}
}

func counter(t *testing.T, a *harness.Agent, metric, exporter string) float64 {
	t.Helper()
	v, _ := a.Value(t, metric, labels{"exporter": exporter})
	return v
}

// refusedIn waits until the metrics and logs backends both hold n refused
// connects to port.
func refusedIn(t *testing.T, prom *harness.Prometheus, logs *harness.VictoriaLogs, port, n int, within time.Duration) {
	t.Helper()
	l := labels{"destination_port": fmt.Sprint(port), "reporter": "client", "result": "refused", "node": "node-1"}
	eventually(t, within, fmt.Sprintf("Prometheus counts %d refused to %d", n, port), func() (bool, string) {
		got := stored(t, prom, "strata_tcp_connections_total", l)
		return got == fmt.Sprint(n), got
	})
	q := logsTo("connect_failed", "destination_port", fmt.Sprint(port))
	eventually(t, within, fmt.Sprintf("VictoriaLogs holds %d connect_failed to %d", n, port), func() (bool, string) {
		lines, err := logs.Logs(q)
		return len(lines) == n, fmt.Sprint(len(lines), err)
	})
}

// TestBackendsDownAtStartThenKilled: the agent starts before its backends,
// which later die and come back a minute later; everything the agent saw
// arrives once they are back, and the log says so once per outage.
func TestBackendsDownAtStartThenKilled(t *testing.T) {
	prom, logs := harness.NewPrometheus(t, harness.PromConfig{}), harness.NewVictoriaLogs(t)
	a := startAgent(t, "--node", "node-1", "--mimir-interval", "5s",
		"--mimir-url", prom.WriteURL(), "--mimir-tenant", "team-a",
		"--loki-url", logs.PushURL(), "--loki-tenant", logs.Tenant,
		// Room for a minute of everything the machine does: other test
		// packages run alongside and some make thousands of events (e2e/dns
		// floods NXDOMAIN on purpose).
		"--loki-queue", "200000")
	lab := netlab.New(t)
	srv := lab.Host("srv", "10.244.7.3/16")
	cli := lab.Host("cli", "10.244.7.2/16")
	queues := map[string]float64{"mimir": 100000, "loki": 200000}

	refuse(t, cli, srv, 19001, 2)
	eventually(t, 20*time.Second, "both exporters report errors", func() (bool, string) {
		m, l := counter(t, a, "strata_agent_export_errors_total", "mimir"), counter(t, a, "strata_agent_export_errors_total", "loki")
		return m > 0 && l > 0, fmt.Sprint(m, l)
	})
	hold(t, a, 3*time.Second, queues)
	prom.Start()
	logs.Start()
	refusedIn(t, prom, logs, 19001, 2, 60*time.Second)

	prom.Stop()
	logs.Stop()
	refuse(t, cli, srv, 19001, 3)
	hold(t, a, time.Minute, queues)
	prom.Start()
	logs.Start()
	refusedIn(t, prom, logs, 19001, 5, 90*time.Second)

	for _, exp := range []string{"mimir", "loki"} {
		if v := counter(t, a, "strata_agent_export_dropped_total", exp); v != 0 {
			t.Errorf("%s dropped %v items; its queue had room for the whole outage", exp, v)
		}
	}
	// Two outages, each said when it began and once when it ended.
	for what, n := range map[string]int{"sending metrics to http://" + prom.Addr: 2, "sending events to http://" + logs.Addr: 2} {
		if got := logLines(a, what); got != n {
			t.Errorf("%d log lines with %s, want %d:\n%s", got, what, n, grep(a, what))
		}
	}
	for _, what := range []string{"metrics to http://" + prom.Addr, "events to http://" + logs.Addr} {
		oncePerCondition(t, a, what)
		if got := logLines(a, "cannot send "+what, `"condition": "connection refused"`); got != 2 {
			t.Errorf("%d 'connection refused' lines for %s, want 2 (one per outage)", got, what)
		}
	}
}

// oncePerCondition checks that the agent never said the same failure twice
// in a row for one backend without a recovery between.
func oncePerCondition(t *testing.T, a *harness.Agent, backend string) {
	t.Helper()
	current := ""
	for _, line := range strings.Split(grep(a, backend), "\n") {
		switch {
		case strings.Contains(line, "cannot send"):
			c := line[strings.Index(line, `"condition"`):]
			c = c[:strings.Index(c, ",")]
			if c == current {
				t.Errorf("said twice: %s", line)
			}
			current = c
		case strings.Contains(line, "again"):
			current = ""
		}
	}
}

// TestBackendFaults: a backend answering 500, refusing with 400, and
// accepting but never answering.
func TestBackendFaults(t *testing.T) {
	prom, logs := harness.StartPrometheus(t, harness.PromConfig{}), harness.StartVictoriaLogs(t)
	mp, lp := harness.StartProxy(t, prom.Addr), harness.StartProxy(t, logs.Addr)
	const mimirQueue, lokiQueue = 5000, 50
	a := startAgent(t, "--node", "node-1", "--mimir-interval", "1s", "--mimir-queue", fmt.Sprint(mimirQueue), "--loki-queue", fmt.Sprint(lokiQueue),
		"--mimir-url", "http://"+mp.Addr+"/api/v1/write", "--mimir-tenant", "team-a",
		"--loki-url", "http://"+lp.Addr+"/insert/loki/api/v1/push", "--loki-tenant", logs.Tenant)
	lab := netlab.New(t)
	srv := lab.Host("srv", "10.244.8.3/16")
	cli := lab.Host("cli", "10.244.8.2/16")
	queues := map[string]float64{"mimir": mimirQueue, "loki": lokiQueue}
	refuse(t, cli, srv, 19100, 1)
	refusedIn(t, prom, logs, 19100, 1, 30*time.Second)

	t.Run("500 for a while", func(t *testing.T) {
		mp.Set(harness.Status500)
		lp.Set(harness.Status500)
		refuse(t, cli, srv, 19101, 2)
		hold(t, a, 10*time.Second, queues)
		mp.Set(harness.Pass)
		lp.Set(harness.Pass)
		// Retried, not lost: the events held during the failure arrive.
		refusedIn(t, prom, logs, 19101, 2, 60*time.Second)
		for name, p := range map[string]*harness.Proxy{"mimir": mp, "loki": lp} {
			if p.Repeats(harness.Status500) == 0 {
				t.Errorf("%s never retried a batch that got a 500", name)
			}
		}
		for _, what := range []string{"cannot send metrics", "cannot send events"} {
			if got := logLines(a, what, `"condition": "HTTP 500"`); got != 1 {
				t.Errorf("%d lines %s with HTTP 500, want 1", got, what)
			}
		}
	})

	t.Run("400 is dropped, not retried", func(t *testing.T) {
		droppedBefore := counter(t, a, "strata_agent_export_dropped_total", "loki")
		mDroppedBefore := counter(t, a, "strata_agent_export_dropped_total", "mimir")
		mp.Set(harness.Status400)
		lp.Set(harness.Status400)
		refuse(t, cli, srv, 19102, 2)
		hold(t, a, 8*time.Second, queues)
		mp.Set(harness.Pass)
		lp.Set(harness.Pass)
		// Other connections on the host make events too: at least ours.
		if got := counter(t, a, "strata_agent_export_dropped_total", "loki") - droppedBefore; got < 2 {
			t.Errorf("loki dropped %v events on 400, want the 2 refused connects at least", got)
		}
		if got := counter(t, a, "strata_agent_export_dropped_total", "mimir") - mDroppedBefore; got == 0 {
			t.Error("mimir dropped nothing while the backend answered 400")
		}
		// Each batch once: nothing sent again.
		for name, p := range map[string]*harness.Proxy{"mimir": mp, "loki": lp} {
			if n, again := p.Requests(harness.Status400), p.Repeats(harness.Status400); n == 0 || again != 0 {
				t.Errorf("%s: %d requests into 400s, %d of them retries; want some and no retries", name, n, again)
			}
		}
		for _, what := range []string{"cannot send metrics", "cannot send events"} {
			if got := logLines(a, what, `"condition": "HTTP 400"`); got != 1 {
				t.Errorf("%d lines %s with HTTP 400, want 1", got, what)
			}
		}
		refuse(t, cli, srv, 19103, 1) // and events flow again
		refusedIn(t, prom, logs, 19103, 1, 30*time.Second)
		if lines, _ := logs.Logs(logsTo("connect_failed", "destination_port", "19102")); len(lines) != 0 {
			t.Errorf("VictoriaLogs holds %d events it refused", len(lines))
		}
	})

	t.Run("accepts but never answers", func(t *testing.T) {
		mDroppedBefore := counter(t, a, "strata_agent_export_dropped_total", "mimir")
		mp.Set(harness.Silent)
		lp.Set(harness.Silent)
		refuse(t, cli, srv, 19104, 2)
		hold(t, a, 30*time.Second, queues)
		if got := counter(t, a, "strata_agent_export_dropped_total", "mimir") - mDroppedBefore; got == 0 {
			t.Error("mimir's queue of 5000 samples never overflowed in 30s of silence")
		}
		mp.Set(harness.Pass)
		lp.Set(harness.Pass)
		refusedIn(t, prom, logs, 19104, 2, 60*time.Second)
		for _, what := range []string{"cannot send metrics", "cannot send events"} {
			if got := logLines(a, what, `"condition": "timeout"`); got != 1 {
				t.Errorf("%d lines %s with a timeout, want 1", got, what)
			}
		}
	})
	// Each condition was said once, and each recovery once.
	for _, what := range []string{"sending metrics to http://" + mp.Addr, "sending events to http://" + lp.Addr} {
		eventually(t, 5*time.Second, "3 recovery lines "+what, func() (bool, string) {
			got := logLines(a, what)
			return got == 3, fmt.Sprint(got)
		})
	}
}

// TestLogsTenantRefused: VictoriaLogs refuses a non-numeric tenant with 400.
// The agent says so once, with what to fix, and drops what was refused
// rather than sending it again.
func TestLogsTenantRefused(t *testing.T) {
	logs := harness.StartVictoriaLogs(t)
	a := startAgent(t, "--loki-url", logs.PushURL(), "--loki-tenant", "team-a")
	lab := netlab.New(t)
	srv := lab.Host("srv", "10.244.12.3/16")
	cli := lab.Host("cli", "10.244.12.2/16")
	refuse(t, cli, srv, 19300, 2)
	eventually(t, 20*time.Second, "the 2 refused connects' events are dropped", func() (bool, string) {
		v := counter(t, a, "strata_agent_export_dropped_total", "loki")
		return v >= 2, fmt.Sprint(v)
	})
	refuse(t, cli, srv, 19300, 1)
	eventually(t, 20*time.Second, "the third is dropped too", func() (bool, string) {
		v := counter(t, a, "strata_agent_export_dropped_total", "loki")
		return v >= 3, fmt.Sprint(v)
	})
	what := "cannot send events to " + logs.PushURL()
	if got := logLines(a, what, `"condition": "HTTP 400"`, "cannot parse accountID", "VictoriaLogs takes only numeric tenants"); got != 1 {
		t.Errorf("%d lines saying the tenant was refused and what to do, want 1:\n%s", got, grep(a, "cannot send events"))
	}
	for _, tenant := range []string{"0", logs.Tenant} {
		other := *logs
		other.Tenant = tenant
		if lines, err := other.Logs(`{job="strata"}`); err != nil || len(lines) != 0 {
			t.Errorf("tenant %s holds %d lines (%v)", tenant, len(lines), err)
		}
	}
}
