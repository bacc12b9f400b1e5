package agent

import (
	"time"

	"golang.org/x/sys/unix"

	"github.com/stratanet/strata/agent/config"
	"github.com/stratanet/strata/agent/dnsflow"
	"github.com/stratanet/strata/identity"
	dnsid "github.com/stratanet/strata/identity/dns"
)

// What the agent remembers of DNS answers: names stay this long past
// their TTL (clients cache longer than they should), and this many
// (namespace, address) pairs at most, about 10 MB.
const (
	dnsGrace = 5 * time.Minute
	dnsNames = 1 << 16
)

// dnsNaming wraps id so that a client's outside destinations are named
// after what the client resolved (with --dns=on), else a configured CIDR
// name. The cache is nil when DNS is off.
func dnsNaming(cfg config.Config, id identity.Identifier) (identity.Identifier, *dnsid.Cache) {
	var cache *dnsid.Cache
	if cfg.DNS == "on" {
		cache = dnsid.NewCache(dnsGrace, dnsNames)
	}
	var cidrs []dnsid.CIDR
	for p, name := range cfg.CIDRNames.Prefixes() {
		cidrs = append(cidrs, dnsid.CIDR{Prefix: p, Name: name})
	}
	if cache == nil && len(cidrs) == 0 {
		return id, nil
	}
	return dnsid.NewNames(id, cache, cidrs), cache
}

func dnsOptions(cfg config.Config) dnsflow.Options {
	o := dnsflow.DefaultOptions()
	o.Timeout = cfg.DNSTimeout
	o.MaxSeries = cfg.MaxSeries
	if n, ok := cfg.LabelBudgets["qname"]; ok {
		o.QnameBudget = n
	}
	return o
}

// monoNow is the kernel's CLOCK_MONOTONIC in ns, the clock of BPF records.
func monoNow() uint64 {
	var ts unix.Timespec
	unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts)
	return uint64(ts.Nano())
}
