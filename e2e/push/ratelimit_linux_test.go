package push_test

import (
	"fmt"
	"regexp"
	"strconv"
	"testing"
	"time"

	"github.com/stratanet/strata/e2e/harness"
	"github.com/stratanet/strata/e2e/netlab"
)

// TestEventStormIsRateLimited: a storm of failed connects costs Loki a
// trickle of lines, and the lines say how many they stand for.
func TestEventStormIsRateLimited(t *testing.T) {
	loki := harness.StartVictoriaLogs(t)
	a := startAgent(t, "--loki-url", loki.PushURL(), "--loki-tenant", loki.Tenant, "--loki-rate", "1")
	lab := netlab.New(t)
	srv := lab.Host("srv", "10.244.10.3/16")
	cli := lab.Host("cli", "10.244.10.2/16")

	start := time.Now()
	refuse(t, cli, srv, 19200, 60)
	storm := time.Since(start)
	time.Sleep(3 * time.Second) // the bucket refills
	refuse(t, cli, srv, 19200, 1)

	// Burst 10 at 1 line/s: the storm leaves at most 10 + its seconds lines
	// (fewer if other connections on the host spent the stream's tokens).
	most := 10 + int(storm.Seconds()+1) + 1
	query := logsTo("connect_failed", "destination_port", "19200")
	var lines []harness.LogLine
	eventually(t, 30*time.Second, "the line after the storm arrives", func() (bool, string) {
		lines, _ = loki.Logs(query)
		for _, l := range lines {
			if regexp.MustCompile(`suppressed=\d+$`).MatchString(l.Line) {
				return true, ""
			}
		}
		return false, fmt.Sprint(len(lines), " lines")
	})
	if len(lines) < 2 || len(lines) > most {
		t.Fatalf("%d lines for 61 failed connects in %v, want between 2 and %d", len(lines), storm, most)
	}
	// The stream's lines and their suppressed counts account for at least
	// our 61 (other connections on the host share the stream, and the
	// count rides on whichever line comes next).
	all, err := loki.Logs(`{job="strata",event="connect_failed"}`)
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, l := range all {
		total++
		if m := regexp.MustCompile(`suppressed=(\d+)$`).FindStringSubmatch(l.Line); m != nil {
			n, _ := strconv.Atoi(m[1])
			total += n
		}
	}
	if total < 61 {
		t.Errorf("lines and suppressed counts make %d, want at least the 61 failed connects", total)
	}
	if v := counter(t, a, "strata_agent_export_dropped_total", "loki"); v < float64(61-len(lines)) {
		t.Errorf("loki dropped %v, want at least %d rate-limited", v, 61-len(lines))
	}
}
