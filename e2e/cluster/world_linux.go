package cluster

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"

	"github.com/stratanet/strata/e2e/dnslab"
	"github.com/stratanet/strata/e2e/netlab"
)

// The world outside the cluster: hosts on ExternalNet, on the same bridge as
// the pods, and a DNS server naming them. Pods and external hosts reach each
// other through on-link routes; nothing has a default route, so no packet
// leaves the lab.
const (
	PodNet      = "10.244.0.0/16"
	ServiceNet  = "10.96.0.0/16"
	ExternalNet = "10.250.0.0/16"
	// DNSServer is the nameserver of every pod and external host.
	DNSServer = "10.250.0.53"
	// DNSTTL is the TTL of every answer, short so that tests see expiry.
	DNSTTL = 5
)

var externalNet = netip.MustParsePrefix(ExternalNet)

// DNS is the cluster's name server: Debian's dnsmasq in its own namespace,
// answering only for the names it was given (A records, wildcards and
// CNAMEs, TTL DNSTTL) and NXDOMAIN for every other name. It forwards nothing.
type DNS struct {
	Host *netlab.Host // its namespace
	t    T
	conf string
	log  string

	mu   sync.Mutex
	cmd  *exec.Cmd
	zone dnslab.Zone
}

func (c *Cluster) startDNS() {
	c.t.Helper()
	if _, err := os.Stat(dnslab.Dnsmasq); err != nil {
		missing(c.t, "dnsmasq not installed (Debian dnsmasq-base): make deps")
	}
	d := &DNS{t: c.t, conf: filepath.Join(c.dir, "dnsmasq.conf"), log: filepath.Join(c.dir, "dnsmasq.log"),
		zone: dnslab.Zone{A: map[string]string{}, CNAME: map[string]string{}, Wildcard: map[string]string{}, TTL: DNSTTL}}
	d.Host = c.outsider("dns", DNSServer)
	c.DNS = d
	d.restart()
}

// A makes name resolve to the address ip.
func (d *DNS) A(name, ip string) {
	d.t.Helper()
	if _, err := netip.ParseAddr(ip); err != nil {
		d.t.Fatalf("cluster: DNS A %s: %v", name, err)
	}
	d.set(d.zone.A, name, ip)
}

// Wildcard makes every name under domain resolve to ip: a flood of
// distinct names that all answer.
func (d *DNS) Wildcard(domain, ip string) {
	d.t.Helper()
	if _, err := netip.ParseAddr(ip); err != nil {
		d.t.Fatalf("cluster: DNS wildcard %s: %v", domain, err)
	}
	d.set(d.zone.Wildcard, domain, ip)
}

// CNAME makes alias an alias of target, a name given to A or CNAME (before
// or after): the answer for alias is the chain down to target's address.
func (d *DNS) CNAME(alias, target string) {
	d.t.Helper()
	d.set(d.zone.CNAME, alias, dnsName(target))
}

// set records a name in one of the zone's maps and restarts dnsmasq with
// it: dnsmasq reads its records only at start. A restart takes a few
// milliseconds, in which queries are refused; add names before the traffic
// that needs them.
func (d *DNS) set(records map[string]string, name, value string) {
	d.t.Helper()
	name = dnsName(name)
	d.mu.Lock()
	for _, m := range []map[string]string{d.zone.A, d.zone.CNAME, d.zone.Wildcard} {
		if _, ok := m[name]; ok {
			d.mu.Unlock()
			d.t.Fatalf("cluster: DNS name %s given twice", name)
		}
	}
	records[name] = value
	d.mu.Unlock()
	d.restart()
}

func dnsName(name string) string { return strings.TrimSuffix(strings.ToLower(name), ".") }

// restart (re)writes the configuration and runs dnsmasq with it, waiting
// until it answers.
func (d *DNS) restart() {
	d.t.Helper()
	d.mu.Lock()
	defer d.mu.Unlock()
	if err := os.WriteFile(d.conf, []byte("# written by e2e/cluster\n"+dnslab.Conf(DNSServer, d.log, d.zone)), 0o644); err != nil {
		d.t.Fatalf("cluster: DNS: %v", err)
	}
	if d.cmd != nil {
		d.Host.Stop(d.cmd)
	}
	d.cmd = d.Host.Start(dnslab.Dnsmasq, "--keep-in-foreground", "--conf-file="+d.conf)
	d.Host.WaitListen(53) // dnsmasq opens TCP and UDP before it serves either
}

// Log is what dnsmasq logged: every query and how it was answered.
func (d *DNS) Log() string {
	b, _ := os.ReadFile(d.log)
	return string(b)
}

// External adds a host outside the cluster with the address ip (in
// ExternalNet), answered for name by the DNS, running argv (if given) until
// the cluster stops. Pods reach it and it reaches pods. More names for the
// same host: DNS.A and DNS.CNAME.
func (c *Cluster) External(name, ip string, argv ...string) *netlab.Host {
	c.t.Helper()
	c.mu.Lock()
	c.externals++
	hn := fmt.Sprintf("x%d", c.externals)
	c.mu.Unlock()
	h := c.outsider(hn, ip)
	if name != "" {
		c.DNS.A(name, ip)
	}
	if len(argv) > 0 {
		h.Start(argv[0], argv[1:]...)
	}
	return h
}

// outsider is a namespace on the bridge with an address in ExternalNet
// that reaches the pods and resolves names with the cluster's DNS.
func (c *Cluster) outsider(name, ip string) *netlab.Host {
	c.t.Helper()
	addr, err := netip.ParseAddr(ip)
	if err != nil || !externalNet.Contains(addr) || (addr.String() == DNSServer && name != "dns") {
		c.t.Fatalf("cluster: external address %q: want one in %s other than %s", ip, ExternalNet, DNSServer)
	}
	h := c.Lab.Host(name, ip+"/16")
	if out, err := h.Run("ip", "route", "add", PodNet, "dev", h.Dev); err != nil {
		c.t.Fatalf("cluster: route to pods in %s: %v %s", name, err, out)
	}
	h.Resolver(DNSServer)
	return h
}
