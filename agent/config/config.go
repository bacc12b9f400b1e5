// Package config is the agent's configuration: defaults, then a YAML file,
// then STRATA_* environment variables, then flags, each overriding the last.
// Every setting is declared once, in settings.
package config

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/stratanet/strata/agent/route"
)

// Config is everything the agent can be told.
type Config struct {
	Kubernetes     string         `yaml:"kubernetes"`
	Kubeconfig     string         `yaml:"kubeconfig"`
	HTTP           string         `yaml:"http"`
	HTTPRoutes     []string       `yaml:"http_routes"`
	HTTPMaxSockets int            `yaml:"http_max_sockets"`
	HTTPMaxPending int            `yaml:"http_max_pending"`
	HTTPMaxSeries  int            `yaml:"http_max_series"`
	HTTPMaxRoutes  int            `yaml:"http_max_routes"`
	DNS            string         `yaml:"dns"`
	DNSTimeout     time.Duration  `yaml:"dns_timeout"`
	CIDRNames      CIDRNames      `yaml:"cidr_names"`
	OTLPEndpoint   string         `yaml:"otlp_endpoint"`
	OTLPInsecure   string         `yaml:"otlp_insecure"`
	MetricsAddr    string         `yaml:"metrics_addr"`
	SweepInterval  time.Duration  `yaml:"sweep_interval"`
	LogLevel       string         `yaml:"log_level"`
	Cluster        string         `yaml:"cluster"`
	RingBuffer     Size           `yaml:"ring_buffer_size"`
	EventQueue     int            `yaml:"event_queue"`
	MaxSockets     int            `yaml:"max_sockets"`
	MaxSeries      int            `yaml:"max_series"`
	LabelBudgets   map[string]int `yaml:"label_budgets"`
	Node           string         `yaml:"node"`
	DeletedGrace   time.Duration  `yaml:"deleted_workload_grace"`

	// Pushing exporters, each off until given a URL or endpoint.
	MimirURL             string        `yaml:"mimir_url"`
	MimirTenant          string        `yaml:"mimir_tenant"`
	MimirUsername        string        `yaml:"mimir_username"`
	MimirPasswordFile    string        `yaml:"mimir_password_file"`
	MimirBearerTokenFile string        `yaml:"mimir_bearer_token_file"`
	MimirCAFile          string        `yaml:"mimir_ca_file"`
	MimirInterval        time.Duration `yaml:"mimir_interval"`
	MimirQueue           int           `yaml:"mimir_queue"`
	LokiURL              string        `yaml:"loki_url"`
	LokiTenant           string        `yaml:"loki_tenant"`
	LokiUsername         string        `yaml:"loki_username"`
	LokiPasswordFile     string        `yaml:"loki_password_file"`
	LokiBearerTokenFile  string        `yaml:"loki_bearer_token_file"`
	LokiCAFile           string        `yaml:"loki_ca_file"`
	LokiQueue            int           `yaml:"loki_queue"`
	LokiRate             int           `yaml:"loki_rate"`
	OTLPTenant           string        `yaml:"otlp_tenant"`
	OTLPBearerTokenFile  string        `yaml:"otlp_bearer_token_file"`
	OTLPCAFile           string        `yaml:"otlp_ca_file"`
	OTLPQueue            int           `yaml:"otlp_queue"`
}

// Backend is how to reach one pushing backend. Its fields are those of
// exporters/export.HTTP, which the agent converts it to: configuration
// names what the user said and imports no exporter.
type Backend struct {
	Tenant          string // X-Scope-OrgID
	Username        string // basic auth, with PasswordFile
	PasswordFile    string
	BearerTokenFile string
	CAFile          string // trust this CA for https (else the system's)
}

// Mimir is how to reach the remote-write backend.
func (c Config) Mimir() Backend {
	return Backend{Tenant: c.MimirTenant, Username: c.MimirUsername, PasswordFile: c.MimirPasswordFile,
		BearerTokenFile: c.MimirBearerTokenFile, CAFile: c.MimirCAFile}
}

// Loki is how to reach the log backend.
func (c Config) Loki() Backend {
	return Backend{Tenant: c.LokiTenant, Username: c.LokiUsername, PasswordFile: c.LokiPasswordFile,
		BearerTokenFile: c.LokiBearerTokenFile, CAFile: c.LokiCAFile}
}

// OTLP is how to reach the trace backend (no basic auth: gRPC takes a token).
func (c Config) OTLP() Backend {
	return Backend{Tenant: c.OTLPTenant, BearerTokenFile: c.OTLPBearerTokenFile, CAFile: c.OTLPCAFile}
}

// check reports settings of b that cannot work, naming the setting.
func (b Backend) check(prefix string) error {
	if b.Username != "" && b.PasswordFile == "" {
		return fmt.Errorf("%s-username needs %s-password-file", prefix, prefix)
	}
	if b.PasswordFile != "" && b.Username == "" {
		return fmt.Errorf("%s-password-file needs %s-username", prefix, prefix)
	}
	if b.PasswordFile != "" && b.BearerTokenFile != "" {
		return fmt.Errorf("%s: basic auth and a bearer token are exclusive", prefix)
	}
	for _, f := range []struct{ setting, path string }{{"password-file", b.PasswordFile}, {"bearer-token-file", b.BearerTokenFile}, {"ca-file", b.CAFile}} {
		if f.path == "" {
			continue
		}
		if _, err := os.Stat(f.path); err != nil {
			return fmt.Errorf("%s-%s: %w", prefix, f.setting, err)
		}
	}
	return nil
}

// check finds settings that are fine alone but not together.
func (c Config) check() error {
	if err := c.Mimir().check("mimir"); err != nil {
		return err
	}
	if err := c.Loki().check("loki"); err != nil {
		return err
	}
	if c.OTLPInsecure == "on" && (c.OTLPCAFile != "" || c.OTLPBearerTokenFile != "") {
		return errors.New("otlp-insecure=on sends in plaintext: it cannot use otlp-ca-file or otlp-bearer-token-file")
	}
	return c.OTLP().check("otlp")
}

// Default is what the agent runs with when told nothing.
func Default() Config {
	return Config{
		Kubernetes:    "auto",
		HTTP:          "off", // on once its overhead at saturation meets the target (docs/metrics.md)
		DNS:           "on",
		DNSTimeout:    5 * time.Second,
		OTLPInsecure:  "off",
		MetricsAddr:   ":9810",
		SweepInterval: 10 * time.Second,
		DeletedGrace:  5 * time.Minute,
		LogLevel:      "info",
		RingBuffer:    8 << 20,
		// A record waits in the queue as 216 bytes (event.Record): a full
		// queue is ~40 MiB, the worst moment of a storm, and nothing
		// between (pooled batches). Three times the records the kernel's
		// 8 MiB ring holds: in a storm the loop falls behind by more than
		// the ring alone (docs/performance.md).
		EventQueue:     196608,
		MaxSockets:     1 << 18,
		MaxSeries:      20000,
		HTTPMaxSockets: 1 << 17,
		HTTPMaxPending: 64,
		HTTPMaxSeries:  20000,
		HTTPMaxRoutes:  500,
		MimirInterval:  15 * time.Second,
		MimirQueue:     100000,
		LokiQueue:      10000,
		LokiRate:       10,
		OTLPQueue:      4096,
	}
}

// Size is a byte count written as 8388608, 8MiB or 512KiB.
type Size uint32

func (s *Size) UnmarshalYAML(n *yaml.Node) error { return s.Set(n.Value) }
func (s Size) String() string                    { return strconv.FormatUint(uint64(s), 10) }

func (s *Size) Set(v string) error {
	mult := uint64(1)
	for suffix, m := range map[string]uint64{"KiB": 1 << 10, "MiB": 1 << 20, "GiB": 1 << 30} {
		if strings.HasSuffix(v, suffix) {
			v, mult = strings.TrimSuffix(v, suffix), m
			break
		}
	}
	n, err := strconv.ParseUint(v, 10, 32)
	if err != nil {
		return fmt.Errorf("not a size like 8MiB: %q", v)
	}
	if n *= mult; n < 4096 || n > 1<<30 || n&(n-1) != 0 {
		return fmt.Errorf("must be a power of two from 4KiB to 1GiB, not %d", n)
	}
	*s = Size(n)
	return nil
}

// setting binds one option's flag, environment variable and YAML key.
type setting struct {
	name, help string
	value      func(*Config) flag.Value
}

var settings = []setting{
	{"kubernetes", "identity source: auto (Kubernetes when in a cluster), on, or off (standalone: process names)",
		func(c *Config) flag.Value { return (*choice)(&c.Kubernetes) }},
	{"kubeconfig", "kubeconfig file for the API server when not running in a pod (in a pod: its service account)",
		func(c *Config) flag.Value { return (*file)(&c.Kubeconfig) }},
	{"http", "HTTP/1.x golden signals and spans from socket calls: on or off (experimental: costs throughput on saturated servers)",
		func(c *Config) flag.Value { return (*onOff)(&c.HTTP) }},
	{"http-routes", "comma-separated route patterns tried before the heuristic, e.g. /api/users/{user}/orders/{order}",
		func(c *Config) flag.Value { return (*patterns)(&c.HTTPRoutes) }},
	{"http-max-sockets", "sockets HTTP follows at most with requests in flight, and apart with exchanges the kernel counts; requests on more are dropped and counted",
		func(c *Config) flag.Value { return (*positive)(&c.HTTPMaxSockets) }},
	{"http-max-pending", "HTTP requests in flight per socket at most (pipelining), 1 to " + strconv.Itoa(maxHTTPPending) + "; more are dropped and counted",
		func(c *Config) flag.Value { return upTo{&c.HTTPMaxPending, maxHTTPPending} }},
	{"http-max-series", "HTTP request series at most (identity, method, status code, route); requests of more are dropped and counted",
		func(c *Config) flag.Value { return (*positive)(&c.HTTPMaxSeries) }},
	{"http-max-routes", "distinct HTTP routes at most; more fold into ~other",
		func(c *Config) flag.Value { return (*positive)(&c.HTTPMaxRoutes) }},
	{"dns", "DNS capture: query metrics, dns_error events, and outside destinations named after what clients resolved: on or off",
		func(c *Config) flag.Value { return (*onOff)(&c.DNS) }},
	{"dns-timeout", "a DNS query unanswered this long counts as rcode=\"timeout\" (>= 1s)",
		func(c *Config) flag.Value { return (*interval)(&c.DNSTimeout) }},
	{"cidr-names", "names of outside address ranges, for destinations no DNS answer named: CIDR=NAME,... e.g. 10.250.9.0/24=partner-vpn (YAML: a map)",
		func(c *Config) flag.Value { return &c.CIDRNames }},
	{"otlp-endpoint", "HOST:PORT of an OTLP gRPC trace backend (Tempo) for request spans; empty: no spans",
		func(c *Config) flag.Value { return (*optionalAddr)(&c.OTLPEndpoint) }},
	{"otlp-insecure", "on: plaintext gRPC to the OTLP endpoint (off: TLS)",
		func(c *Config) flag.Value { return (*onOff)(&c.OTLPInsecure) }},
	{"metrics-addr", "HOST:PORT to serve /metrics on",
		func(c *Config) flag.Value { return (*addr)(&c.MetricsAddr) }},
	{"sweep-interval", "how often live sockets are read for bytes, retransmits and RTT (>= 1s)",
		func(c *Config) flag.Value { return (*interval)(&c.SweepInterval) }},
	{"log-level", "debug, info, warn or error",
		func(c *Config) flag.Value { return (*level)(&c.LogLevel) }},
	{"cluster", "cluster name added to pushed data",
		func(c *Config) flag.Value { return (*text)(&c.Cluster) }},
	{"ring-buffer-size", "kernel ring buffer size, a power of two (e.g. 8MiB)",
		func(c *Config) flag.Value { return &c.RingBuffer }},
	{"event-queue", "events buffered between the ring buffer and aggregation",
		func(c *Config) flag.Value { return (*positive)(&c.EventQueue) }},
	{"max-sockets", "live sockets followed at most",
		func(c *Config) flag.Value { return (*positive)(&c.MaxSockets) }},
	{"max-series", "distinct identity label sets at most; more fold into ~other",
		func(c *Config) flag.Value { return (*positive)(&c.MaxSeries) }},
	{"node", "node name added to pushed data (in a DaemonSet: the downward API's spec.nodeName); default: the host name",
		func(c *Config) flag.Value { return (*text)(&c.Node) }},
	{"deleted-workload-grace", "how long the series of a deleted Kubernetes workload stay after it goes (>= 1s)",
		func(c *Config) flag.Value { return (*interval)(&c.DeletedGrace) }},

	{"mimir-url", "Prometheus remote-write URL to push metrics to, e.g. http://mimir:8080/api/v1/push; empty: no push",
		func(c *Config) flag.Value { return (*pushURL)(&c.MimirURL) }},
	{"mimir-tenant", "tenant sent as X-Scope-OrgID to the remote-write backend",
		func(c *Config) flag.Value { return (*text)(&c.MimirTenant) }},
	{"mimir-username", "basic-auth user for the remote-write backend (with mimir-password-file)",
		func(c *Config) flag.Value { return (*text)(&c.MimirUsername) }},
	{"mimir-password-file", "file holding the basic-auth password (a mounted Secret; re-read on every push)",
		func(c *Config) flag.Value { return (*file)(&c.MimirPasswordFile) }},
	{"mimir-bearer-token-file", "file holding a bearer token for the remote-write backend (re-read on every push)",
		func(c *Config) flag.Value { return (*file)(&c.MimirBearerTokenFile) }},
	{"mimir-ca-file", "PEM CA to trust for an https remote-write URL (default: the system's)",
		func(c *Config) flag.Value { return (*file)(&c.MimirCAFile) }},
	{"mimir-interval", "how often metrics are pushed (>= 1s)",
		func(c *Config) flag.Value { return (*interval)(&c.MimirInterval) }},
	{"mimir-queue", "samples held while the remote-write backend is away; beyond that the oldest are dropped",
		func(c *Config) flag.Value { return (*positive)(&c.MimirQueue) }},

	{"loki-url", "Loki push URL for connection events, e.g. http://loki:3100/loki/api/v1/push (VictoriaLogs: /insert/loki/api/v1/push); empty: no events",
		func(c *Config) flag.Value { return (*pushURL)(&c.LokiURL) }},
	{"loki-tenant", "tenant sent as X-Scope-OrgID to Loki",
		func(c *Config) flag.Value { return (*text)(&c.LokiTenant) }},
	{"loki-username", "basic-auth user for Loki (with loki-password-file)",
		func(c *Config) flag.Value { return (*text)(&c.LokiUsername) }},
	{"loki-password-file", "file holding Loki's basic-auth password (re-read on every push)",
		func(c *Config) flag.Value { return (*file)(&c.LokiPasswordFile) }},
	{"loki-bearer-token-file", "file holding a bearer token for Loki (re-read on every push)",
		func(c *Config) flag.Value { return (*file)(&c.LokiBearerTokenFile) }},
	{"loki-ca-file", "PEM CA to trust for an https Loki URL (default: the system's)",
		func(c *Config) flag.Value { return (*file)(&c.LokiCAFile) }},
	{"loki-queue", "events held while Loki is away; beyond that new ones are dropped",
		func(c *Config) flag.Value { return (*positive)(&c.LokiQueue) }},
	{"loki-rate", "event lines per second per stream (event kind and namespace), bursts of 10x; the rest are counted in the next line's suppressed=",
		func(c *Config) flag.Value { return (*positive)(&c.LokiRate) }},

	{"otlp-tenant", "tenant sent as X-Scope-OrgID to the OTLP trace backend",
		func(c *Config) flag.Value { return (*text)(&c.OTLPTenant) }},
	{"otlp-bearer-token-file", "file holding a bearer token for the OTLP trace backend (read at start)",
		func(c *Config) flag.Value { return (*file)(&c.OTLPBearerTokenFile) }},
	{"otlp-ca-file", "PEM CA to trust for the OTLP endpoint's TLS (default: the system's)",
		func(c *Config) flag.Value { return (*file)(&c.OTLPCAFile) }},
	{"otlp-queue", "spans held while the trace backend is away; beyond that new ones are dropped",
		func(c *Config) flag.Value { return (*positive)(&c.OTLPQueue) }},
}

// UsageError is a mistake in what the user told the agent (exit code 2).
type UsageError struct{ Err error }

func (e UsageError) Error() string { return e.Err.Error() }
func (e UsageError) Unwrap() error { return e.Err }

// Load reads the configuration from args (without the program name),
// the environment lookup and the file named by --config or STRATA_CONFIG.
func Load(args []string, getenv func(string) string, stderr io.Writer) (Config, error) {
	cfg := Default()
	fs := flag.NewFlagSet("strata-agent", flag.ContinueOnError)
	fs.SetOutput(stderr)
	flagged := Default() // flags parse into a scratch copy (showing defaults), applied last
	for _, s := range settings {
		fs.Var(s.value(&flagged), s.name, s.help)
	}
	file := fs.String("config", getenv("STRATA_CONFIG"), "YAML configuration file (env STRATA_CONFIG)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: strata-agent [flags]\n\nEvery flag can also be set as STRATA_<NAME> (e.g. STRATA_METRICS_ADDR) or in the --config YAML file (metrics_addr: ...).\nFlags override the environment, which overrides the file.\n\nFlags:")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return cfg, err
		}
		return cfg, UsageError{err}
	}
	if fs.NArg() > 0 {
		return cfg, UsageError{fmt.Errorf("unexpected argument %q (all options are flags)", fs.Arg(0))}
	}
	if *file != "" {
		if err := readFile(*file, &cfg); err != nil {
			return cfg, UsageError{err}
		}
	}
	for _, s := range settings {
		env := "STRATA_" + strings.ToUpper(strings.ReplaceAll(s.name, "-", "_"))
		if v := getenv(env); v != "" {
			if err := s.value(&cfg).Set(v); err != nil {
				return cfg, UsageError{fmt.Errorf("invalid %s=%q: %w", env, v, err)}
			}
		}
	}
	var err error
	fs.Visit(func(f *flag.Flag) {
		if f.Name != "config" && err == nil {
			err = s(f.Name).value(&cfg).Set(f.Value.String())
		}
	})
	if err != nil {
		return cfg, UsageError{err}
	}
	if err := cfg.check(); err != nil {
		return cfg, UsageError{err}
	}
	return cfg, nil
}

func s(name string) setting {
	for _, st := range settings {
		if st.name == name {
			return st
		}
	}
	panic("unknown setting " + name)
}

func readFile(path string, cfg *Config) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	defer f.Close()
	dec := yaml.NewDecoder(f)
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	// The file goes through the same checks as flags.
	for _, st := range settings {
		v := st.value(cfg)
		if err := v.Set(v.String()); err != nil {
			return fmt.Errorf("config file %s: %s: %w", path, strings.ReplaceAll(st.name, "-", "_"), err)
		}
	}
	for label, n := range cfg.LabelBudgets {
		if !slices.Contains(BudgetLabels, label) {
			// A typo would otherwise leave the label uncapped, silently.
			return fmt.Errorf("config file %s: label_budgets.%s: no such label; budgets apply to %s", path, label, strings.Join(BudgetLabels, ", "))
		}
		if n < 1 {
			return fmt.Errorf("config file %s: label_budgets.%s must be at least 1", path, label)
		}
	}
	return nil
}

// BudgetLabels are the labels label_budgets can cap: the identity labels of
// every per-connection series (agent/flow's budgets) and DNS's qname.
var BudgetLabels = []string{"source_namespace", "source_workload", "destination_namespace",
	"destination_workload", "destination_service", "destination_port", "qname"}

// Value types, each validating as it parses.

type text string

func (t *text) String() string     { return string(*t) }
func (t *text) Set(v string) error { *t = text(v); return nil }

type choice string

func (c *choice) String() string { return string(*c) }
func (c *choice) Set(v string) error {
	switch v {
	case "auto", "on", "off":
		*c = choice(v)
		return nil
	}
	return fmt.Errorf("must be auto, on or off, not %q", v)
}

type patterns []string

func (p *patterns) String() string { return strings.Join(*p, ",") }
func (p *patterns) Set(v string) error {
	var out []string
	for _, s := range strings.Split(v, ",") {
		if s = strings.TrimSpace(s); s != "" {
			out = append(out, s)
		}
	}
	if _, err := route.New(out); err != nil {
		return err
	}
	*p = out
	return nil
}

type onOff string

func (o *onOff) String() string { return string(*o) }
func (o *onOff) Set(v string) error {
	if v != "on" && v != "off" {
		return fmt.Errorf("must be on or off, not %q", v)
	}
	*o = onOff(v)
	return nil
}

type level string

func (l *level) String() string { return string(*l) }
func (l *level) Set(v string) error {
	switch v {
	case "debug", "info", "warn", "error":
		*l = level(v)
		return nil
	}
	return fmt.Errorf("must be debug, info, warn or error, not %q", v)
}

type addr string

func (a *addr) String() string { return string(*a) }
func (a *addr) Set(v string) error {
	_, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("must be HOST:PORT (e.g. :9810 or 127.0.0.1:9810), not %q", v)
	}
	if p, err := strconv.Atoi(port); err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("port %q is not a number from 0 to 65535", port)
	}
	*a = addr(v)
	return nil
}

// pushURL is an optional http(s) URL with a host.
type pushURL string

func (u *pushURL) String() string { return string(*u) }
func (u *pushURL) Set(v string) error {
	if v == "" {
		*u = ""
		return nil
	}
	p, err := url.Parse(v)
	if err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Hostname() == "" {
		return fmt.Errorf("must be an http:// or https:// URL with a host, not %q", v)
	}
	if p.User != nil { // it would show in logs; secrets belong in files
		return errors.New("must not carry credentials: use the -username and -password-file settings")
	}
	*u = pushURL(v)
	return nil
}

// file is an optional path that must be readable now: a missing Secret
// mount is a mistake to report at start, not at the first push.
type file string

func (f *file) String() string { return string(*f) }
func (f *file) Set(v string) error {
	if v != "" {
		fh, err := os.Open(v)
		if err != nil {
			return fmt.Errorf("cannot read %q: %w", v, errors.Unwrap(err))
		}
		st, err := fh.Stat()
		fh.Close()
		if err == nil && !st.Mode().IsRegular() {
			return fmt.Errorf("%q is not a file", v)
		}
	}
	*f = file(v)
	return nil
}

type optionalAddr string

func (a *optionalAddr) String() string { return string(*a) }
func (a *optionalAddr) Set(v string) error {
	if v == "" {
		*a = ""
		return nil
	}
	return (*addr)(a).Set(v)
}

type interval time.Duration

func (i *interval) String() string { return time.Duration(*i).String() }
func (i *interval) Set(v string) error {
	d, err := time.ParseDuration(v)
	if err != nil {
		return fmt.Errorf("must be a duration like 10s, not %q", v)
	}
	if d < time.Second {
		return fmt.Errorf("must be at least 1s, not %s", d)
	}
	*i = interval(d)
	return nil
}

type positive int

func (p *positive) String() string { return strconv.Itoa(int(*p)) }
func (p *positive) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 {
		return fmt.Errorf("must be a positive whole number, not %q", v)
	}
	*p = positive(n)
	return nil
}

// maxHTTPPending bounds --http-max-pending: the requests in flight on
// every followed socket are held in memory, and no client pipelines more.
const maxHTTPPending = 1024

// upTo is a whole number from 1 to max.
type upTo struct {
	n   *int
	max int
}

func (u upTo) String() string {
	if u.n == nil { // the flag package's zero value
		return "0"
	}
	return strconv.Itoa(*u.n)
}

func (u upTo) Set(v string) error {
	n, err := strconv.Atoi(v)
	if err != nil || n < 1 || n > u.max {
		return fmt.Errorf("must be a whole number from 1 to %d, not %q", u.max, v)
	}
	*u.n = n
	return nil
}

// CIDRNames names outside address ranges: canonical prefix -> name. As a
// flag or variable: 10.250.9.0/24=partner-vpn,192.0.2.0/24=office.
type CIDRNames map[string]string

func (c *CIDRNames) String() string {
	var items []string
	for p, name := range *c {
		items = append(items, p+"="+name)
	}
	slices.Sort(items)
	return strings.Join(items, ",")
}

func (c *CIDRNames) Set(v string) error {
	out := CIDRNames{}
	for _, item := range strings.Split(v, ",") {
		if item = strings.TrimSpace(item); item == "" {
			continue
		}
		cidr, name, ok := strings.Cut(item, "=")
		if !ok {
			return fmt.Errorf("want CIDR=NAME (names cannot hold ',' or '='), not %q", item)
		}
		p, err := netip.ParsePrefix(strings.TrimSpace(cidr))
		if err != nil {
			return fmt.Errorf("%q is not a CIDR like 10.250.9.0/24", strings.TrimSpace(cidr))
		}
		if p != p.Masked() {
			return fmt.Errorf("%s has host bits set: write %s", p, p.Masked())
		}
		name = strings.TrimSpace(name)
		if name == "" || name == "~other" || strings.ContainsAny(name, " \t\n\"") {
			return fmt.Errorf("name of %s must be a word without spaces or quotes (and not ~other), not %q", p, name)
		}
		if _, dup := out[p.String()]; dup {
			return fmt.Errorf("%s is named twice", p)
		}
		out[p.String()] = name
	}
	if len(out) == 0 {
		out = nil
	}
	*c = out
	return nil
}

// Prefixes are the names as (prefix, name) pairs, in no particular order.
func (c CIDRNames) Prefixes() map[netip.Prefix]string {
	out := make(map[netip.Prefix]string, len(c))
	for p, name := range c {
		out[netip.MustParsePrefix(p)] = name // checked by Set
	}
	return out
}
