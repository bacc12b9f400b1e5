// Package dnslab runs Debian's dnsmasq as the authoritative name server of
// a netlab host, and points other hosts' resolvers at it, for tests of DNS
// capture with real clients (glibc's getent, Go's resolver).
package dnslab

import (
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stratanet/strata/e2e/netlab"
)

// Dnsmasq is where Debian's dnsmasq(-base) installs it.
const Dnsmasq = "/usr/sbin/dnsmasq"

// Require fails the test in CI, and skips it elsewhere, without root or
// the tools: a skipped test in CI would hide a regression.
func Require(t testing.TB) {
	t.Helper()
	netlab.Require(t)
	reason := ""
	if _, err := os.Stat(Dnsmasq); err != nil {
		reason = "needs " + Dnsmasq + " (Debian dnsmasq-base: make deps)"
	} else if _, err := exec.LookPath("getent"); err != nil {
		reason = "needs getent (libc-bin)"
	}
	if reason == "" {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("dnslab: %s", reason)
	}
	t.Skipf("dnslab: %s", reason)
}

// Zone is what the server answers; every other name is NXDOMAIN.
type Zone struct {
	A        map[string]string // name -> IPv4 address
	CNAME    map[string]string // alias -> target
	Wildcard map[string]string // domain -> the address of every name under it
	TTL      int               // of every answer
}

// Conf is dnsmasq's configuration serving z on listen (port 53, UDP and
// TCP, that address only), forwarding nothing and logging every query to
// log. Lines are sorted: the same zone gives the same file.
func Conf(listen, log string, z Zone) string {
	var b strings.Builder
	fmt.Fprintf(&b, `no-resolv
no-hosts
no-poll
local=/#/
port=53
listen-address=%s
bind-interfaces
user=root
group=root
pid-file=
log-facility=%s
log-queries
local-ttl=%d
`, listen, log, z.TTL)
	for _, name := range slices.Sorted(maps.Keys(z.A)) {
		fmt.Fprintf(&b, "host-record=%s,%s,%d\n", name, z.A[name], z.TTL)
	}
	for _, domain := range slices.Sorted(maps.Keys(z.Wildcard)) {
		fmt.Fprintf(&b, "address=/%s/%s\n", domain, z.Wildcard[domain])
	}
	for _, alias := range slices.Sorted(maps.Keys(z.CNAME)) {
		fmt.Fprintf(&b, "cname=%s,%s,%d\n", alias, z.CNAME[alias], z.TTL)
	}
	return b.String()
}

// Serve runs dnsmasq on h (port 53, UDP and TCP, on h's address only)
// until the test ends. It forwards nothing. log is where it logs queries.
func Serve(t testing.TB, h *netlab.Host, z Zone) (log string) {
	t.Helper()
	Require(t)
	dir := t.TempDir()
	log = filepath.Join(dir, "dnsmasq.log")
	conf := filepath.Join(dir, "dnsmasq.conf")
	if err := os.WriteFile(conf, []byte(Conf(h.IP.String(), log, z)), 0o644); err != nil {
		t.Fatal(err)
	}
	h.Start(Dnsmasq, "--keep-in-foreground", "--conf-file="+conf)
	h.WaitListen(53) // dnsmasq opens TCP and UDP before it serves either
	return log
}

// Resolver writes h's /etc/resolv.conf (ip netns exec bind-mounts
// /etc/netns/<ns>/resolv.conf over it for the commands it starts): the
// given lines, e.g. "nameserver 10.250.0.53", "options timeout:1 attempts:1".
// It is removed when the test that first wrote it ends: a subtest that
// rewrites it leaves the last version to the tests after it.
func Resolver(t testing.TB, h *netlab.Host, lines ...string) {
	t.Helper()
	dir := filepath.Join("/etc/netns", h.NS)
	if _, err := os.Stat(dir); err != nil {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(dir) })
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}
