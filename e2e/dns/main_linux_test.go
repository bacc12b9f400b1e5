// Package dns_test runs the real agent while real DNS clients (glibc's
// getent, Go's resolver) ask a real name server (dnsmasq) in network
// namespaces, and asserts exact values scraped from /metrics.
package dns_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stratanet/strata/e2e/dnslab"
	"github.com/stratanet/strata/e2e/harness"
	"github.com/stratanet/strata/e2e/netlab"
)

var bin string

// The clients run under names of their own: other tests on this host
// (probes/dns, e2e/cluster) run getent and resolve too, and the agent
// counts every process on the host.
const (
	resolver = "e2e-resolve"
	getent   = "e2e-getent"
)

func TestMain(m *testing.M) {
	harness.Main(m, &bin, map[string]string{
		"strata-agent": "../../agent/cmd/strata-agent",
		resolver:       "../cmd/resolve",
		"tcpserver":    "../cmd/tcpserver",
	})
}

type labels = harness.Labels

func startAgent(t *testing.T, args ...string) *harness.Agent {
	return harness.StartAgent(t, filepath.Join(bin, "strata-agent"), args...)
}

// Addresses of our own: other labs on this host (e2e/cluster, the demo)
// give api.twilio.com 10.250.1.10 to a namespace of theirs, which the
// agent, seeing every namespace, would take for a local address.
const (
	dnsIP    = "10.250.201.53"
	silentIP = "10.250.201.99" // no host: queries to it go unanswered
	serverIP = "10.250.201.11" // the one server behind every outside address
	twilioIP = "10.250.202.10"
	edgeIP   = "10.250.203.20"
)

// world is a name server, an outside server and a client namespace, all
// on one bridge. The outside addresses the names resolve to (twilioIP,
// edgeIP, ...) live on no namespace of this host, as a real external
// service's would not: the client's namespace sends every TCP connection
// to 10.250.0.0/16:443 on to the server, like a NAT gateway on the path.
type world struct {
	dns, server, client *netlab.Host
	getent              string // glibc's getent under our own name
}

func newWorld(t *testing.T) *world {
	t.Helper()
	dnslab.Require(t)
	lab := netlab.New(t)
	// One /8: every host reaches the others on-link, nothing leaves.
	w := &world{dns: lab.Host("dns", dnsIP+"/8"), server: lab.Host("srv", serverIP+"/8"), client: lab.Host("cli", "10.244.201.2/8")}
	dnslab.Serve(t, w.dns, dnslab.Zone{TTL: 2,
		A:     map[string]string{"api.twilio.com": twilioIP, "edge.cdn.test": edgeIP},
		CNAME: map[string]string{"www.shop.test": "edge.cdn.test"}})
	dnslab.Resolver(t, w.client, "nameserver "+dnsIP, "options timeout:1 attempts:1")
	w.server.Start(filepath.Join(bin, "tcpserver"), "-listen", serverIP+":443")
	w.server.WaitListen(443)
	if out, err := w.client.Run("iptables", "-w", "-t", "nat", "-A", "OUTPUT", "-p", "tcp", "-d", "10.250.0.0/16",
		"--dport", "443", "-j", "DNAT", "--to-destination", serverIP); err != nil {
		t.Fatalf("NAT to the outside server: %v %s", err, out)
	}
	w.getent = filepath.Join(t.TempDir(), getent)
	b, err := os.ReadFile("/usr/bin/getent")
	if err == nil {
		err = os.WriteFile(w.getent, b, 0o755)
	}
	if err != nil {
		t.Fatal(err)
	}
	return w
}

// result is what the resolve tool prints.
type result struct {
	Lookups, OK, Failed, Connected int
	Addrs, Errors                  []string
}

// resolve runs Go's resolver in the client namespace.
func (w *world) resolve(t *testing.T, args ...string) result {
	t.Helper()
	out, err := w.client.Run(filepath.Join(bin, resolver), args...)
	var r result
	if jerr := json.Unmarshal([]byte(strings.TrimSpace(out)), &r); jerr != nil {
		t.Fatalf("resolve %v: %v %v: %s", args, err, jerr, out)
	}
	return r
}

// lookup runs glibc's getent ahostsv4 (one A query per name) n times.
func (w *world) lookup(t *testing.T, n int, name string, wantFound bool) {
	t.Helper()
	for i := 0; i < n; i++ {
		out, err := w.client.Run(w.getent, "ahostsv4", name)
		if (err == nil) != wantFound {
			t.Fatalf("getent ahostsv4 %s: %v %s", name, err, out)
		}
	}
}

// eventually polls check until it holds, or fails with its last state.
func eventually(t *testing.T, within time.Duration, what string, check func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		ok, state := check()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v; last: %s", what, within, state)
		}
		time.Sleep(250 * time.Millisecond)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}
