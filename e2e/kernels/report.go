package main

import (
	"fmt"
	"os"
	"sort"
	"strings"
	"time"
)

// row is what one kernel's VM reported.
type row struct {
	Series, Release string
	Modes           map[string]string // probe -> mode, from strata_agent_probe_info
	Why             []string          // the agent's lines about probes it could not run
	Tests           []result
	Duration        time.Duration
	Err             string
	Partial         bool // -only: the agent's modes may not have been asked
}

type result struct {
	Name                          string
	RC, Pass, Fail, Skip, Seconds int
}

func (r *row) parse(l string) {
	f := strings.Fields(l)
	if len(f) == 0 {
		return
	}
	switch f[0] {
	case "strata-mode":
		if len(f) == 3 {
			if r.Modes == nil {
				r.Modes = map[string]string{}
			}
			r.Modes[f[1]] = f[2]
		}
	case "strata-why":
		r.Why = append(r.Why, strings.TrimPrefix(l, "strata-why "))
	case "strata-test":
		if len(f) == 7 {
			t := result{Name: f[1]}
			for _, kv := range f[2:] {
				k, v, _ := strings.Cut(kv, "=")
				var n int
				fmt.Sscan(v, &n)
				switch k {
				case "rc":
					t.RC = n
				case "pass":
					t.Pass = n
				case "fail":
					t.Fail = n
				case "skip":
					t.Skip = n
				case "seconds":
					t.Seconds = n
				}
			}
			r.Tests = append(r.Tests, t)
		}
	}
}

// ok: the VM finished, every test binary passed and none skipped a test,
// and the agent reported its probes.
func (r *row) ok() bool {
	if r.Err != "" || len(r.Tests) == 0 || (len(r.Modes) == 0 && !r.Partial) {
		return false
	}
	for _, t := range r.Tests {
		if t.RC != 0 || t.Fail > 0 || t.Skip > 0 {
			return false
		}
	}
	return true
}

func (r *row) verdict() string {
	switch {
	case r.ok():
		return "PASS"
	case r.Err != "":
		return "FAIL (" + r.Err + ")"
	}
	return "FAIL"
}

// tally is "passed/run" over the test binaries whose name has prefix,
// with the failing ones named.
func (r *row) tally(prefix string) string {
	pass, all := 0, 0
	var bad []string
	for _, t := range r.Tests {
		if !strings.HasPrefix(t.Name, prefix) {
			continue
		}
		pass += t.Pass
		all += t.Pass + t.Fail + t.Skip
		if t.RC != 0 || t.Fail+t.Skip > 0 {
			bad = append(bad, strings.TrimPrefix(t.Name, prefix))
		}
	}
	if all == 0 && len(bad) == 0 {
		return "—"
	}
	s := fmt.Sprintf("%d/%d", pass, all)
	if len(bad) > 0 {
		s += " (failed: " + strings.Join(bad, ", ") + ")"
	}
	return s
}

// probeOrder is the agent's own order (agent/health.go); probes it does
// not know yet go last, by name.
var probeOrder = []string{"tcp_state", "tcp_retransmit", "tcp_reset", "tcp_sweep", "http", "dns"}

func render(rows []row) string {
	seen := map[string]bool{}
	probes := append([]string(nil), probeOrder...)
	for _, p := range probes {
		seen[p] = true
	}
	var extra []string
	for _, r := range rows {
		for p := range r.Modes {
			if !seen[p] {
				seen[p] = true
				extra = append(extra, p)
			}
		}
	}
	sort.Strings(extra)
	probes = append(probes, extra...)
	var b strings.Builder
	b.WriteString("| kernel |")
	for _, p := range probes {
		b.WriteString(" " + p + " |")
	}
	b.WriteString(" probes tests | end-to-end | VM time | result |\n|---|")
	for range probes {
		b.WriteString("---|")
	}
	b.WriteString("---|---|---|---|\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "| %s (%s) |", r.Series, r.Release)
		for _, p := range probes {
			m := r.Modes[p]
			if m == "" {
				m = "—"
			}
			b.WriteString(" " + m + " |")
		}
		fmt.Fprintf(&b, " %s | %s | %s | %s |\n", r.tally("probes-"), r.tally("e2e-"), r.Duration.Round(time.Second), r.verdict())
	}
	for _, r := range rows {
		for _, w := range r.Why {
			fmt.Fprintf(&b, "\n%s: %s", r.Series, w)
		}
	}
	return b.String() + "\n"
}

func writeDoc(path, table string) error {
	doc := `# Kernels the probes were run on

Written by ` + "`make test-kernels`" + ` (e2e/kernels): each Debian cloud kernel boots under
qemu (TCG, 2 vCPUs) on this host's root shared read-only, runs every probes/... test binary,
starts the agent with ` + "`--http=on`" + ` to read each probe's mode from
` + "`strata_agent_probe_info`" + `, and runs the end-to-end scenario (e2e/tcp TestTCPGoldenSignals:
exact TCP counts between two namespaces and a refused connect; e2e/dns TestDNS: dnsmasq answers;
e2e/http TestHTTPGoldenSignals: exact HTTP counts against nginx). Tests passed counts top-level
tests. VM time is boot plus tests under emulation (about 10-50 times slower than the host).
The lines under the table are the agent's own, one per probe that fell back or was refused on
that kernel: the feature it missed.

` + table + `
No fentry or kprobe mode for HTTP on 5.10-6.2 (e.g. on ` + "`tcp_sendmsg`/`tcp_recvmsg`" + `): the
issue wanted one only where it measures better than the syscall fallback, and nothing here can
measure that. The fallback already counts exactly on 5.10 and 6.1 (above), so such a mode could
only win on cost; the kernels that would run it exist here only under TCG emulation, where
timing is the emulator's, and this host's own 6.18 has the tracepoints (and refuses fentry).
`
	return os.WriteFile(path, []byte(doc), 0o644)
}
