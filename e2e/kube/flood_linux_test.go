package kube_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratanet/strata/e2e/cluster"
	"github.com/stratanet/strata/e2e/harness"
)

// TestNameFlood: one pod resolves 5000 distinct random names, each
// answered, and connects to every answer, one after another. Every connection is counted,
// the names beyond the destination_workload budget fold into ~other (and
// are counted as overflow), and the agent's memory stays flat.
func TestNameFlood(t *testing.T) {
	const names, budget = 5000, 300
	c := cluster.Start(t)
	conf := filepath.Join(t.TempDir(), "strata.yaml")
	os.WriteFile(conf, []byte(fmt.Sprintf("label_budgets:\n  destination_workload: %d\n  qname: %d\n", budget, budget)), 0o600)
	agent := harness.StartAgent(t, filepath.Join(bin, "strata-agent"), "--config", conf,
		"--kubernetes=on", "--kubeconfig", c.Kubeconfig, "--sweep-interval", "1s")
	c.External("", "10.250.9.9", filepath.Join(bin, "tcpserver"), "-listen", ":443", "-request", "0", "-reply", "0")
	c.DNS.Wildcard("flood.test", "10.250.9.9")
	c.Apply("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")

	before, err := agent.RSS()
	if err != nil {
		t.Fatal(err)
	}
	c.Apply(fmt.Sprintf(`
apiVersion: batch/v1
kind: Job
metadata: {name: flood, namespace: shop}
spec:
  backoffLimit: 0
  template:
    spec:
      restartPolicy: Never
      containers:
      - {name: flood, image: local/resolve, command: [%q, "-random", "%d", "-suffix", "flood.test", "-connect", "443"]}
`, filepath.Join(bin, "resolve"), names))

	// Every attempt, whatever its result: on a busy machine one of the 5000
	// connects may time out, and it is counted as such (result="timeout").
	from := labels{"source_namespace": "shop", "source_workload": "flood", "reporter": "client", "destination_port": "443"}
	var named, other float64
	var distinct int
	deadline := time.Now().Add(90 * time.Second)
	for {
		mfs, err := agent.Scrape()
		if err != nil {
			t.Fatal(err)
		}
		named, other, distinct = 0, 0, 0
		for _, m := range harness.Series(mfs, "strata_tcp_connections_total", from) {
			v := m.GetCounter().GetValue()
			for _, l := range m.GetLabel() {
				if l.GetName() != "destination_workload" {
					continue
				}
				switch {
				case strings.HasSuffix(l.GetValue(), ".flood.test"):
					named += v
					distinct++
				case l.GetValue() == "~other":
					other += v
				default:
					t.Fatalf("a flood connection named %q", l.GetValue())
				}
			}
		}
		if named+other == names {
			break
		}
		if time.Now().After(deadline) {
			for _, m := range harness.Series(mfs, "strata_tcp_connections_total", labels{"destination_port": "443"}) {
				if !strings.Contains(m.String(), "flood.test") && !strings.Contains(m.String(), "~other") {
					t.Logf("also: %v", m)
				}
			}
			for _, name := range []string{"strata_agent_events_lost_total", "strata_agent_untracked_sockets_total", "strata_agent_stale_sockets_total"} {
				for _, m := range harness.Series(mfs, name, nil) {
					t.Logf("%s %v", name, m)
				}
			}
			t.Fatalf("after 90s: %v connections under their names + %v under ~other, want %d in all", named, other, names)
		}
		time.Sleep(time.Second)
	}
	// One lookup, then its connection: each connection has a name of its
	// own, until the budget (shared with whatever else the agent sees) is full.
	if float64(distinct) != named || distinct > budget || distinct < budget/2 {
		t.Errorf("%d distinct names on %v connections: want one each, %d at most (a few slots may hold other tests' names)", distinct, named, budget)
	}
	if v, ok := agent.Value(t, "strata_agent_overflow_total", labels{"label": "destination_workload"}); !ok || v < names-budget {
		t.Errorf("destination_workload overflow = %v, want at least %d", v, names-budget)
	}
	if v, ok := agent.Value(t, "strata_agent_series", labels{"metric": "strata_tcp_connections_total"}); !ok || v > 3*budget {
		t.Errorf("strata_agent_series{metric=strata_tcp_connections_total} = %v, want the budget to hold it under %d", v, 3*budget)
	}
	after, err := agent.RSS()
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d names: %v connections named, %v under ~other; agent RSS %d MiB before, %d MiB after", names, named, other, before>>20, after>>20)
	if after-before > 64<<20 {
		t.Errorf("agent RSS grew by %d MiB over %d names", (after-before)>>20, names)
	}
}
