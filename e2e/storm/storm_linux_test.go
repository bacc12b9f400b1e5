package storm_test

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratanet/strata/e2e/harness"
	"github.com/stratanet/strata/e2e/netlab"
)

type labels = harness.Labels

// result is what tcpclient prints.
type result struct {
	OK, Failed     int
	Errors         []string
	Sent, Received int64
}

// TestEightStorms: eight storms at once, each a client and a server in a
// pair of namespaces of its own, made after the agent started (as new pods
// are: each namespace's first records wait for its addresses, off the
// loop). Every connection is counted at both ends under its own port, and
// no record is lost on the way (ring buffer, decode), nor any host
// lookup dropped or hold given up. `make bench-storm` is the big one.
//
// The storms run at nice 19: on this 2-core machine sixteen busy storm
// processes would otherwise outvote the agent's threads for CPU (the
// kernel shares it by thread here, by cgroup weight under Kubernetes, where
// the agent's pod has its request), and records are then lost for want of
// CPU, counted, whatever the agent does (docs/performance.md).
func TestEightStorms(t *testing.T) {
	const storms, conns, parallel = 8, 5000, 8
	a := harness.StartAgent(t, filepath.Join(bin, "strata-agent"), "--sweep-interval", "1s", "--http=on", "--dns=on")
	lab := netlab.New(t)
	type storm struct {
		srv, cli *netlab.Host
		port     uint16
	}
	var all []storm
	for i := range storms {
		s := storm{
			srv:  lab.Host(fmt.Sprintf("s%d", i), fmt.Sprintf("10.244.%d.1/16", 40+i)),
			cli:  lab.Host(fmt.Sprintf("c%d", i), fmt.Sprintf("10.244.%d.2/16", 40+i)),
			port: uint16(9200 + i),
		}
		s.srv.Sysctl("net.core.somaxconn", "4096")
		s.srv.Start("nice", "-n", "19", filepath.Join(bin, "tcpserver"), "-listen", fmt.Sprintf("%s:%d", s.srv.IP, s.port))
		all = append(all, s)
	}
	for _, s := range all {
		s.srv.WaitListen(s.port)
	}

	type done struct {
		i   int
		r   result
		err error
	}
	results := make(chan done, storms)
	for i, s := range all {
		go func() {
			out, err := s.cli.Run("nice", "-n", "19", filepath.Join(bin, "tcpclient"), "-connect", fmt.Sprintf("%s:%d", s.srv.IP, s.port),
				"-count", strconv.Itoa(conns), "-parallel", strconv.Itoa(parallel), "-reset", "-allow-fail")
			var r result
			if err == nil {
				err = json.Unmarshal([]byte(strings.TrimSpace(out)), &r)
			}
			results <- done{i, r, err}
		}()
	}
	made := make([]int, storms)
	for range storms {
		d := <-results
		if d.err != nil {
			t.Fatalf("storm %d: %v", d.i, d.err)
		}
		made[d.i] = d.r.OK
		t.Logf("storm %d: %+v", d.i, d.r)
	}

	for i, s := range all {
		if made[i] < conns*9/10 { // a storm that mostly failed proves little
			t.Fatalf("storm %d made %d connections of %d", i, made[i], conns)
		}
		for _, reporter := range []string{"client", "server"} {
			settle := time.Duration(0)
			if i == storms-1 {
				settle = 2 * time.Second // two sweeps: nothing counted twice
			}
			a.Expect(t, "strata_tcp_connections_total", labels{
				"source_workload": "tcpclient", "destination_workload": "tcpserver",
				"destination_port": strconv.Itoa(int(s.port)), "reporter": reporter, "result": "success",
			}, float64(made[i]), settle)
		}
	}
	mfs, err := a.Scrape()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range harness.Series(mfs, "strata_agent_events_lost_total", nil) {
		if v := m.GetCounter().GetValue(); v != 0 {
			t.Errorf("records lost: %v", m)
		}
	}
	for _, lookup := range []string{"addresses", "owners"} {
		if v, ok := harness.ValueIn(t, mfs, "strata_agent_host_lookups_total", labels{"lookup": lookup, "outcome": "dropped"}); !ok || v != 0 {
			t.Errorf("%s lookups dropped: %v (present %v), want 0", lookup, v, ok)
		}
	}
	// Each of the sixteen namespaces was listed when first seen.
	if v, _ := harness.ValueIn(t, mfs, "strata_agent_host_lookups_total", labels{"lookup": "addresses", "outcome": "answered"}); v < 2*storms {
		t.Errorf("namespace listings answered: %v, want at least %d", v, 2*storms)
	}
	if v, ok := harness.ValueIn(t, mfs, "strata_agent_held_released_total", nil); !ok || v != 0 {
		t.Errorf("holds given up: %v (present %v), want 0", v, ok)
	}
	if v, ok := harness.ValueIn(t, mfs, "strata_agent_held_records", nil); !ok || v != 0 {
		t.Errorf("records still held: %v (present %v), want 0", v, ok)
	}
}
