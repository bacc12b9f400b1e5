package config

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stratanet/strata/agent/flow"
)

// fixtures is a directory of real files for the settings that must name a
// readable file (passwords, tokens, CAs). TestMain creates it before any
// test runs and removes it after the last.
var fixtures string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "strata-config-test-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "creating fixtures:", err)
		os.Exit(1)
	}
	fixtures = dir
	layerCases = newLayerCases()
	code := m.Run()
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintln(os.Stderr, "removing fixtures:", err)
		if code == 0 {
			code = 1
		}
	}
	os.Exit(code)
}

// fixture returns the path of a readable file called name in fixtures,
// writing it (with its own name as content) if it is not there yet.
func fixture(name string) string {
	if fixtures == "" {
		panic("fixture " + name + " used before TestMain created the fixtures directory")
	}
	p := filepath.Join(fixtures, name)
	if _, err := os.Stat(p); err == nil {
		return p
	}
	if err := os.WriteFile(p, []byte(name+"\n"), 0o600); err != nil {
		panic(err)
	}
	return p
}

// missingFile returns a path in fixtures that does not exist.
func missingFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(fixtures, "missing", name)
	if _, err := os.Stat(p); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("%s should not exist: %v", p, err)
	}
	return p
}

// env returns a fake getenv backed by m.
func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

// writeConfig writes content to a fresh YAML file and returns its path.
func writeConfig(t *testing.T, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "strata.yaml")
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// load calls Load with a fake environment and a captured stderr.
func load(t *testing.T, args []string, vars map[string]string) (Config, *bytes.Buffer, error) {
	t.Helper()
	var stderr bytes.Buffer
	cfg, err := Load(args, env(vars), &stderr)
	return cfg, &stderr, err
}

func mustLoad(t *testing.T, args []string, vars map[string]string) Config {
	t.Helper()
	cfg, stderr, err := load(t, args, vars)
	if err != nil {
		t.Fatalf("Load(%q, %v) error: %v", args, vars, err)
	}
	if stderr.Len() != 0 {
		t.Errorf("Load(%q, %v) wrote to stderr: %q", args, vars, stderr.String())
	}
	return cfg
}

func TestDefault(t *testing.T) {
	want := Config{
		DeletedGrace: 5 * time.Minute,
		Kubernetes:   "auto",
		HTTP:         "off",
		HTTPRoutes:   nil,
		DNS:          "on",
		DNSTimeout:   5 * time.Second,
		CIDRNames:    nil,

		HTTPMaxSockets: 131072,
		HTTPMaxPending: 64,
		HTTPMaxSeries:  20000,
		HTTPMaxRoutes:  500,

		OTLPEndpoint:  "",
		OTLPInsecure:  "off",
		MetricsAddr:   ":9810",
		SweepInterval: 10 * time.Second,
		LogLevel:      "info",
		Cluster:       "",
		RingBuffer:    8 << 20,
		EventQueue:    196608,
		MaxSockets:    262144,
		MaxSeries:     20000,
		LabelBudgets:  nil,
		Node:          "",

		// Exporters are off (no URL, no endpoint) but their tuning has defaults.
		MimirURL:             "",
		MimirTenant:          "",
		MimirUsername:        "",
		MimirPasswordFile:    "",
		MimirBearerTokenFile: "",
		MimirCAFile:          "",
		MimirInterval:        15 * time.Second,
		MimirQueue:           100000,
		LokiURL:              "",
		LokiTenant:           "",
		LokiUsername:         "",
		LokiPasswordFile:     "",
		LokiBearerTokenFile:  "",
		LokiCAFile:           "",
		LokiQueue:            10000,
		LokiRate:             10,
		OTLPTenant:           "",
		OTLPBearerTokenFile:  "",
		OTLPCAFile:           "",
		OTLPQueue:            4096,
	}
	if got := Default(); !reflect.DeepEqual(got, want) {
		t.Errorf("Default() = %+v, want %+v", got, want)
	}
}

func TestDefaultReturnsFreshValue(t *testing.T) {
	a := Default()
	a.MetricsAddr = "changed:1"
	a.LabelBudgets = map[string]int{"x": 1}
	if b := Default(); b.MetricsAddr != ":9810" || b.LabelBudgets != nil {
		t.Errorf("Default() affected by mutating an earlier result: %+v", b)
	}
}

func TestLoadNothingGivesDefault(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
	}{
		{"nil args nil env", nil, nil},
		{"empty args", []string{}, map[string]string{}},
		{"empty env values ignored", nil, map[string]string{
			"STRATA_CONFIG":           "",
			"STRATA_METRICS_ADDR":     "",
			"STRATA_SWEEP_INTERVAL":   "",
			"STRATA_KUBERNETES":       "",
			"STRATA_LOG_LEVEL":        "",
			"STRATA_RING_BUFFER_SIZE": "",
			"STRATA_MAX_SOCKETS":      "",
			"STRATA_NODE":             "",
			"STRATA_MIMIR_URL":        "",
			"STRATA_MIMIR_CA_FILE":    "",
			"STRATA_MIMIR_INTERVAL":   "",
			"STRATA_LOKI_USERNAME":    "",
			"STRATA_LOKI_RATE":        "",
			"STRATA_OTLP_QUEUE":       "",
		}},
		{"unrelated env ignored", nil, map[string]string{
			"METRICS_ADDR":         "nohost",
			"strata_log_level":     "loud",
			"STRATA_METRICSADDR":   "nohost",
			"STRATA_LABEL_BUDGETS": "x",
		}},
		{"double dash only", []string{"--"}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, want := mustLoad(t, tc.args, tc.vars), Default(); !reflect.DeepEqual(got, want) {
				t.Errorf("Load = %+v, want %+v", got, want)
			}
		})
	}
}

// layerCase describes one setting given at each layer with a distinct value.
type layerCase struct {
	flag, env, key              string
	fileYAML, envVal, flagVal   string
	fileWant, envWant, flagWant any
	get                         func(Config) any
	// needs are other (string) settings, by flag name, that must be given
	// too for the configuration to pass Config.check.
	needs map[string]string
}

// layerCases is built by TestMain once the fixture files exist.
var layerCases []layerCase

// fileCase is a layer case for a setting naming a readable file: each layer
// names a different real file.
func fileCase(name string, get func(Config) any, needs map[string]string) layerCase {
	file, env, flag := fixture(name+".file"), fixture(name+".env"), fixture(name+".flag")
	under := strings.ReplaceAll(name, "-", "_")
	return layerCase{
		flag: name, env: "STRATA_" + strings.ToUpper(under), key: under,
		fileYAML: strconv.Quote(file), envVal: env, flagVal: flag,
		fileWant: file, envWant: env, flagWant: flag,
		get: get, needs: needs,
	}
}

func newLayerCases() []layerCase {
	return []layerCase{
		{
			flag: "http", env: "STRATA_HTTP", key: "http",
			fileYAML: `"on"`, envVal: "off", flagVal: "on",
			fileWant: "on", envWant: "off", flagWant: "on",
			get: func(c Config) any { return c.HTTP },
		},
		{
			flag: "http-routes", env: "STRATA_HTTP_ROUTES", key: "http_routes",
			fileYAML: `["/a/{x}", /b]`, envVal: "/env/{id}", flagVal: " /f , /g/{h}/i ",
			fileWant: []string{"/a/{x}", "/b"}, envWant: []string{"/env/{id}"}, flagWant: []string{"/f", "/g/{h}/i"},
			get: func(c Config) any { return c.HTTPRoutes },
		},
		{
			flag: "dns", env: "STRATA_DNS", key: "dns",
			fileYAML: `"off"`, envVal: "on", flagVal: "off",
			fileWant: "off", envWant: "on", flagWant: "off",
			get: func(c Config) any { return c.DNS },
		},
		{
			flag: "dns-timeout", env: "STRATA_DNS_TIMEOUT", key: "dns_timeout",
			fileYAML: "2s", envVal: "10s", flagVal: "1m",
			fileWant: 2 * time.Second, envWant: 10 * time.Second, flagWant: time.Minute,
			get: func(c Config) any { return c.DNSTimeout },
		},
		{
			flag: "cidr-names", env: "STRATA_CIDR_NAMES", key: "cidr_names",
			fileYAML: `{"10.250.9.0/24": partner-vpn, "2001:db8::/32": lab}`,
			envVal:   "192.0.2.0/24=office", flagVal: " 10.0.0.0/8 = corp , 10.1.0.0/16=corp-eu ",
			fileWant: CIDRNames{"10.250.9.0/24": "partner-vpn", "2001:db8::/32": "lab"},
			envWant:  CIDRNames{"192.0.2.0/24": "office"},
			flagWant: CIDRNames{"10.0.0.0/8": "corp", "10.1.0.0/16": "corp-eu"},
			get:      func(c Config) any { return c.CIDRNames },
		},
		{
			flag: "otlp-endpoint", env: "STRATA_OTLP_ENDPOINT", key: "otlp_endpoint",
			fileYAML: `"tempo:4317"`, envVal: "127.0.0.1:4317", flagVal: "[::1]:4318",
			fileWant: "tempo:4317", envWant: "127.0.0.1:4317", flagWant: "[::1]:4318",
			get: func(c Config) any { return c.OTLPEndpoint },
		},
		{
			flag: "otlp-insecure", env: "STRATA_OTLP_INSECURE", key: "otlp_insecure",
			fileYAML: `"on"`, envVal: "off", flagVal: "on",
			fileWant: "on", envWant: "off", flagWant: "on",
			get: func(c Config) any { return c.OTLPInsecure },
		},
		{
			flag: "metrics-addr", env: "STRATA_METRICS_ADDR", key: "metrics_addr",
			fileYAML: `"127.0.0.1:1000"`, envVal: ":2000", flagVal: "0.0.0.0:3000",
			fileWant: "127.0.0.1:1000", envWant: ":2000", flagWant: "0.0.0.0:3000",
			get: func(c Config) any { return c.MetricsAddr },
		},
		{
			flag: "sweep-interval", env: "STRATA_SWEEP_INTERVAL", key: "sweep_interval",
			fileYAML: "20s", envVal: "30s", flagVal: "1m30s",
			fileWant: 20 * time.Second, envWant: 30 * time.Second, flagWant: 90 * time.Second,
			get: func(c Config) any { return c.SweepInterval },
		},
		{
			flag: "deleted-workload-grace", env: "STRATA_DELETED_WORKLOAD_GRACE", key: "deleted_workload_grace",
			fileYAML: "10m", envVal: "30s", flagVal: "1h",
			fileWant: 10 * time.Minute, envWant: 30 * time.Second, flagWant: time.Hour,
			get: func(c Config) any { return c.DeletedGrace },
		},
		{
			flag: "kubernetes", env: "STRATA_KUBERNETES", key: "kubernetes",
			fileYAML: "off", envVal: "on", flagVal: "auto",
			fileWant: "off", envWant: "on", flagWant: "auto",
			get: func(c Config) any { return c.Kubernetes },
		},
		{
			flag: "log-level", env: "STRATA_LOG_LEVEL", key: "log_level",
			fileYAML: "debug", envVal: "warn", flagVal: "error",
			fileWant: "debug", envWant: "warn", flagWant: "error",
			get: func(c Config) any { return c.LogLevel },
		},
		{
			flag: "ring-buffer-size", env: "STRATA_RING_BUFFER_SIZE", key: "ring_buffer_size",
			fileYAML: "4MiB", envVal: "16KiB", flagVal: "1048576",
			fileWant: Size(4 << 20), envWant: Size(16 << 10), flagWant: Size(1 << 20),
			get: func(c Config) any { return c.RingBuffer },
		},
		{
			flag: "cluster", env: "STRATA_CLUSTER", key: "cluster",
			fileYAML: "from-file", envVal: "from-env", flagVal: "from-flag",
			fileWant: "from-file", envWant: "from-env", flagWant: "from-flag",
			get: func(c Config) any { return c.Cluster },
		},
		{
			flag: "event-queue", env: "STRATA_EVENT_QUEUE", key: "event_queue",
			fileYAML: "100", envVal: "200", flagVal: "300",
			fileWant: 100, envWant: 200, flagWant: 300,
			get: func(c Config) any { return c.EventQueue },
		},
		{
			flag: "max-sockets", env: "STRATA_MAX_SOCKETS", key: "max_sockets",
			fileYAML: "1", envVal: "2", flagVal: "3",
			fileWant: 1, envWant: 2, flagWant: 3,
			get: func(c Config) any { return c.MaxSockets },
		},
		{
			flag: "max-series", env: "STRATA_MAX_SERIES", key: "max_series",
			fileYAML: "10", envVal: "20", flagVal: "30",
			fileWant: 10, envWant: 20, flagWant: 30,
			get: func(c Config) any { return c.MaxSeries },
		},
		{
			flag: "http-max-sockets", env: "STRATA_HTTP_MAX_SOCKETS", key: "http_max_sockets",
			fileYAML: "100", envVal: "200", flagVal: "300",
			fileWant: 100, envWant: 200, flagWant: 300,
			get: func(c Config) any { return c.HTTPMaxSockets },
		},
		{
			flag: "http-max-pending", env: "STRATA_HTTP_MAX_PENDING", key: "http_max_pending",
			fileYAML: "1", envVal: "2", flagVal: "1024",
			fileWant: 1, envWant: 2, flagWant: 1024,
			get: func(c Config) any { return c.HTTPMaxPending },
		},
		{
			flag: "http-max-series", env: "STRATA_HTTP_MAX_SERIES", key: "http_max_series",
			fileYAML: "10", envVal: "20", flagVal: "30",
			fileWant: 10, envWant: 20, flagWant: 30,
			get: func(c Config) any { return c.HTTPMaxSeries },
		},
		{
			flag: "http-max-routes", env: "STRATA_HTTP_MAX_ROUTES", key: "http_max_routes",
			fileYAML: "5", envVal: "6", flagVal: "7",
			fileWant: 5, envWant: 6, flagWant: 7,
			get: func(c Config) any { return c.HTTPMaxRoutes },
		},
		{
			flag: "node", env: "STRATA_NODE", key: "node",
			fileYAML: "node-file", envVal: "node-env", flagVal: "node-flag",
			fileWant: "node-file", envWant: "node-env", flagWant: "node-flag",
			get: func(c Config) any { return c.Node },
		},

		{
			flag: "mimir-url", env: "STRATA_MIMIR_URL", key: "mimir_url",
			fileYAML: `"http://mimir-file:8080/api/v1/push"`, envVal: "https://mimir-env.example/api/v1/push", flagVal: "http://[::1]:9009/push?x=1",
			fileWant: "http://mimir-file:8080/api/v1/push", envWant: "https://mimir-env.example/api/v1/push", flagWant: "http://[::1]:9009/push?x=1",
			get: func(c Config) any { return c.MimirURL },
		},
		{
			flag: "mimir-tenant", env: "STRATA_MIMIR_TENANT", key: "mimir_tenant",
			fileYAML: "tenant-file", envVal: "tenant-env", flagVal: "tenant-flag",
			fileWant: "tenant-file", envWant: "tenant-env", flagWant: "tenant-flag",
			get: func(c Config) any { return c.MimirTenant },
		},
		{
			flag: "mimir-username", env: "STRATA_MIMIR_USERNAME", key: "mimir_username",
			fileYAML: "user-file", envVal: "user-env", flagVal: "user-flag",
			fileWant: "user-file", envWant: "user-env", flagWant: "user-flag",
			get:   func(c Config) any { return c.MimirUsername },
			needs: map[string]string{"mimir-password-file": fixture("mimir-password")},
		},
		fileCase("mimir-password-file", func(c Config) any { return c.MimirPasswordFile },
			map[string]string{"mimir-username": "mimir-user"}),
		fileCase("mimir-bearer-token-file", func(c Config) any { return c.MimirBearerTokenFile }, nil),
		fileCase("mimir-ca-file", func(c Config) any { return c.MimirCAFile }, nil),
		{
			flag: "mimir-interval", env: "STRATA_MIMIR_INTERVAL", key: "mimir_interval",
			fileYAML: "30s", envVal: "1m", flagVal: "1s",
			fileWant: 30 * time.Second, envWant: time.Minute, flagWant: time.Second,
			get: func(c Config) any { return c.MimirInterval },
		},
		{
			flag: "mimir-queue", env: "STRATA_MIMIR_QUEUE", key: "mimir_queue",
			fileYAML: "500", envVal: "600", flagVal: "700",
			fileWant: 500, envWant: 600, flagWant: 700,
			get: func(c Config) any { return c.MimirQueue },
		},

		{
			flag: "loki-url", env: "STRATA_LOKI_URL", key: "loki_url",
			fileYAML: `"http://loki-file:3100/loki/api/v1/push"`, envVal: "https://loki-env.example:443/loki/api/v1/push", flagVal: "http://127.0.0.1:3100",
			fileWant: "http://loki-file:3100/loki/api/v1/push", envWant: "https://loki-env.example:443/loki/api/v1/push", flagWant: "http://127.0.0.1:3100",
			get: func(c Config) any { return c.LokiURL },
		},
		{
			flag: "loki-tenant", env: "STRATA_LOKI_TENANT", key: "loki_tenant",
			fileYAML: "loki-tenant-file", envVal: "loki-tenant-env", flagVal: "loki-tenant-flag",
			fileWant: "loki-tenant-file", envWant: "loki-tenant-env", flagWant: "loki-tenant-flag",
			get: func(c Config) any { return c.LokiTenant },
		},
		{
			flag: "loki-username", env: "STRATA_LOKI_USERNAME", key: "loki_username",
			fileYAML: "loki-user-file", envVal: "loki-user-env", flagVal: "loki-user-flag",
			fileWant: "loki-user-file", envWant: "loki-user-env", flagWant: "loki-user-flag",
			get:   func(c Config) any { return c.LokiUsername },
			needs: map[string]string{"loki-password-file": fixture("loki-password")},
		},
		fileCase("loki-password-file", func(c Config) any { return c.LokiPasswordFile },
			map[string]string{"loki-username": "loki-user"}),
		fileCase("loki-bearer-token-file", func(c Config) any { return c.LokiBearerTokenFile }, nil),
		fileCase("loki-ca-file", func(c Config) any { return c.LokiCAFile }, nil),
		{
			flag: "loki-queue", env: "STRATA_LOKI_QUEUE", key: "loki_queue",
			fileYAML: "11", envVal: "22", flagVal: "33",
			fileWant: 11, envWant: 22, flagWant: 33,
			get: func(c Config) any { return c.LokiQueue },
		},
		{
			flag: "loki-rate", env: "STRATA_LOKI_RATE", key: "loki_rate",
			fileYAML: "1", envVal: "50", flagVal: "1000",
			fileWant: 1, envWant: 50, flagWant: 1000,
			get: func(c Config) any { return c.LokiRate },
		},

		{
			flag: "otlp-tenant", env: "STRATA_OTLP_TENANT", key: "otlp_tenant",
			fileYAML: "otlp-tenant-file", envVal: "otlp-tenant-env", flagVal: "otlp-tenant-flag",
			fileWant: "otlp-tenant-file", envWant: "otlp-tenant-env", flagWant: "otlp-tenant-flag",
			get: func(c Config) any { return c.OTLPTenant },
		},
		fileCase("otlp-bearer-token-file", func(c Config) any { return c.OTLPBearerTokenFile }, nil),
		fileCase("otlp-ca-file", func(c Config) any { return c.OTLPCAFile }, nil),
		fileCase("kubeconfig", func(c Config) any { return c.Kubeconfig }, nil),
		{
			flag: "otlp-queue", env: "STRATA_OTLP_QUEUE", key: "otlp_queue",
			fileYAML: "1", envVal: "2048", flagVal: "65536",
			fileWant: 1, envWant: 2048, flagWant: 65536,
			get: func(c Config) any { return c.OTLPQueue },
		},
	}
}

func TestLayerCasesCoverEverySetting(t *testing.T) {
	covered := map[string]bool{}
	for _, lc := range layerCases {
		covered[lc.flag] = true
		if want := "STRATA_" + strings.ToUpper(strings.ReplaceAll(lc.flag, "-", "_")); lc.env != want {
			t.Errorf("layer case %s: env %s, want %s", lc.flag, lc.env, want)
		}
		if want := strings.ReplaceAll(lc.flag, "-", "_"); lc.key != want {
			t.Errorf("layer case %s: key %s, want %s", lc.flag, lc.key, want)
		}
	}
	for _, s := range settings {
		if !covered[s.name] {
			t.Errorf("setting %q has no layer case", s.name)
		}
	}
	if len(layerCases) != len(settings) {
		t.Errorf("%d layer cases for %d settings", len(layerCases), len(settings))
	}
}

func TestPrecedence(t *testing.T) {
	for _, lc := range layerCases {
		for _, layers := range []struct {
			name            string
			file, env, flag bool
		}{
			{"file", true, false, false},
			{"env", false, true, false},
			{"flag", false, false, true},
			{"file+env", true, true, false},
			{"file+flag", true, false, true},
			{"env+flag", false, true, true},
			{"file+env+flag", true, true, true},
		} {
			t.Run(lc.flag+"/"+layers.name, func(t *testing.T) {
				vars := map[string]string{}
				var args []string
				for name, v := range lc.needs {
					args = append(args, "--"+name+"="+v)
				}
				var want any
				if layers.file {
					vars["STRATA_CONFIG"] = writeConfig(t, lc.key+": "+lc.fileYAML+"\n")
					want = lc.fileWant
				}
				if layers.env {
					vars[lc.env] = lc.envVal
					want = lc.envWant
				}
				if layers.flag {
					args = append(args, "--"+lc.flag+"="+lc.flagVal)
					want = lc.flagWant
				}
				cfg := mustLoad(t, args, vars)
				if got := lc.get(cfg); !reflect.DeepEqual(got, want) {
					t.Errorf("%s = %#v, want %#v", lc.key, got, want)
				}
				// Everything else stays at its default.
				def := Default()
				for _, other := range layerCases {
					if other.flag == lc.flag {
						continue
					}
					if v, ok := lc.needs[other.flag]; ok {
						if got := other.get(cfg); got != v {
							t.Errorf("needed %s = %#v, want %q", other.key, got, v)
						}
						continue
					}
					if got, w := other.get(cfg), other.get(def); !reflect.DeepEqual(got, w) {
						t.Errorf("unrelated %s = %#v, want default %#v", other.key, got, w)
					}
				}
			})
		}
	}
}

// TestPrecedenceMixed sets several settings across layers at once and checks
// each one ends up with the value from the highest layer that sets it.
func TestPrecedenceMixed(t *testing.T) {
	filePassword, flagPassword := fixture("mixed-password.file"), fixture("mixed-password.flag")
	envCA, flagToken := fixture("mixed-ca.env"), fixture("mixed-token.flag")
	file := writeConfig(t, `
kubernetes: off
metrics_addr: "127.0.0.1:1111"
sweep_interval: 15s
log_level: debug
ring_buffer_size: 4MiB
cluster: file-cluster
max_series: 7
http_max_pending: 8
http_max_series: 9
http_routes: ["/file/{a}"]
otlp_endpoint: "file:1"
node: file-node
mimir_url: http://mimir-file/push
mimir_interval: 20s
mimir_username: file-user
mimir_password_file: `+strconv.Quote(filePassword)+`
loki_url: http://loki-file:3100/push
loki_rate: 5
otlp_queue: 12
`)
	vars := map[string]string{
		"STRATA_HTTP_ROUTES":      "/env/{b}",
		"STRATA_HTTP":             "on",
		"STRATA_METRICS_ADDR":     ":2222",
		"STRATA_SWEEP_INTERVAL":   "25s",
		"STRATA_RING_BUFFER_SIZE": "64KiB",
		"STRATA_EVENT_QUEUE":      "99",
		"STRATA_HTTP_MAX_SERIES":  "900",
		"STRATA_MIMIR_URL":        "https://mimir-env/push",
		"STRATA_MIMIR_INTERVAL":   "40s",
		"STRATA_MIMIR_TENANT":     "env-tenant",
		"STRATA_LOKI_QUEUE":       "77",
		"STRATA_LOKI_CA_FILE":     envCA,
		"STRATA_NODE":             "",
	}
	args := []string{
		"--config", file,
		"--sweep-interval", "2m",
		"-log-level=warn",
		"--max-sockets=5",
		"--http-max-sockets=6",
		"--otlp-endpoint=",
		"--mimir-interval=45s",
		"--mimir-password-file", flagPassword,
		"--loki-url=",
		"--otlp-bearer-token-file=" + flagToken,
	}
	got := mustLoad(t, args, vars)
	want := Config{
		Kubernetes:     "off",                // file
		HTTP:           "on",                 // env
		HTTPRoutes:     []string{"/env/{b}"}, // env over file
		HTTPMaxSockets: 6,                    // flag
		HTTPMaxPending: 8,                    // file
		HTTPMaxSeries:  900,                  // env over file
		HTTPMaxRoutes:  500,                  // default
		DNS:            "on",                 // default
		DNSTimeout:     5 * time.Second,      // default
		OTLPEndpoint:   "",                   // empty flag over file
		OTLPInsecure:   "off",                // default
		MetricsAddr:    ":2222",              // env over file
		SweepInterval:  2 * time.Minute,      // flag over env over file
		DeletedGrace:   5 * time.Minute,      // default
		LogLevel:       "warn",               // flag over file
		Cluster:        "file-cluster",       // file
		RingBuffer:     64 << 10,             // env over file
		EventQueue:     99,                   // env
		MaxSockets:     5,                    // flag
		MaxSeries:      7,                    // file
		Node:           "file-node",          // file (empty env ignored)

		MimirURL:             "https://mimir-env/push", // env over file
		MimirTenant:          "env-tenant",             // env
		MimirUsername:        "file-user",              // file
		MimirPasswordFile:    flagPassword,             // flag over file
		MimirBearerTokenFile: "",                       // default
		MimirCAFile:          "",                       // default
		MimirInterval:        45 * time.Second,         // flag over env over file
		MimirQueue:           100000,                   // default
		LokiURL:              "",                       // empty flag over file
		LokiTenant:           "",                       // default
		LokiUsername:         "",                       // default
		LokiPasswordFile:     "",                       // default
		LokiBearerTokenFile:  "",                       // default
		LokiCAFile:           envCA,                    // env
		LokiQueue:            77,                       // env
		LokiRate:             5,                        // file
		OTLPTenant:           "",                       // default
		OTLPBearerTokenFile:  flagToken,                // flag
		OTLPCAFile:           "",                       // default
		OTLPQueue:            12,                       // file
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load =\n %+v\nwant\n %+v", got, want)
	}
}

// A flag given explicitly wins even when it equals the built-in default.
func TestFlagEqualToDefaultStillOverrides(t *testing.T) {
	file := writeConfig(t, "log_level: debug\nkubernetes: off\nsweep_interval: 30s\n")
	vars := map[string]string{"STRATA_CONFIG": file, "STRATA_LOG_LEVEL": "error"}
	cfg := mustLoad(t, []string{"--log-level=info", "--kubernetes=auto", "--sweep-interval=10s"}, vars)
	if cfg.LogLevel != "info" || cfg.Kubernetes != "auto" || cfg.SweepInterval != 10*time.Second {
		t.Errorf("got log_level=%q kubernetes=%q sweep_interval=%v, want info, auto, 10s",
			cfg.LogLevel, cfg.Kubernetes, cfg.SweepInterval)
	}
}

// When a flag is repeated the last one wins.
func TestRepeatedFlagLastWins(t *testing.T) {
	cfg := mustLoad(t, []string{"--metrics-addr=:1", "--metrics-addr=:2"}, nil)
	if cfg.MetricsAddr != ":2" {
		t.Errorf("MetricsAddr = %q, want :2", cfg.MetricsAddr)
	}
}

func TestConfigFileSelection(t *testing.T) {
	envFile := writeConfig(t, "cluster: env-file\n")
	flagFile := writeConfig(t, "cluster: flag-file\n")
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		want string
	}{
		{"STRATA_CONFIG", nil, map[string]string{"STRATA_CONFIG": envFile}, "env-file"},
		{"--config", []string{"--config", flagFile}, nil, "flag-file"},
		{"-config=", []string{"-config=" + flagFile}, nil, "flag-file"},
		{"--config overrides STRATA_CONFIG", []string{"--config=" + flagFile}, map[string]string{"STRATA_CONFIG": envFile}, "flag-file"},
		{"empty --config disables STRATA_CONFIG", []string{"--config="}, map[string]string{"STRATA_CONFIG": envFile}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := mustLoad(t, tc.args, tc.vars).Cluster; got != tc.want {
				t.Errorf("Cluster = %q, want %q", got, tc.want)
			}
		})
	}
}

// TestFileAllSettings loads a file giving every key at once, except those
// Config.check forbids together with the ones given here (a bearer token
// beside basic auth, a CA or token beside otlp_insecure: on);
// TestFileExporterSettings covers those.
func TestFileAllSettings(t *testing.T) {
	mimirPassword, mimirCA := fixture("all-mimir-password"), fixture("all-mimir-ca")
	lokiToken, lokiCA := fixture("all-loki-token"), fixture("all-loki-ca")
	file := writeConfig(t, `# every key
kubernetes: on
http: on
http_routes:
  - /api/users/{user}/orders/{order}
  - /health
dns: off
dns_timeout: 3s
cidr_names:
  10.250.9.0/24: partner-vpn
otlp_endpoint: tempo.monitoring:4317
otlp_insecure: on
metrics_addr: "[::1]:9999"
sweep_interval: 1m
deleted_workload_grace: 90s
log_level: warn
cluster: prod-eu
ring_buffer_size: 512KiB
event_queue: 1024
max_sockets: 4096
max_series: 500
http_max_sockets: 2048
http_max_pending: 16
http_max_series: 3000
http_max_routes: 50
label_budgets:
  destination_workload: 50
  source_namespace: 3
node: worker-1
mimir_url: http://mimir.monitoring:8080/api/v1/push
mimir_tenant: team-a
mimir_username: agent
mimir_password_file: `+strconv.Quote(mimirPassword)+`
mimir_ca_file: `+strconv.Quote(mimirCA)+`
mimir_interval: 30s
mimir_queue: 5000
loki_url: https://loki.monitoring:3100/loki/api/v1/push
loki_tenant: team-b
loki_bearer_token_file: `+strconv.Quote(lokiToken)+`
loki_ca_file: `+strconv.Quote(lokiCA)+`
loki_queue: 300
loki_rate: 25
otlp_tenant: team-c
otlp_queue: 100
`)
	got := mustLoad(t, []string{"--config", file}, nil)
	want := Config{
		Kubernetes:     "on",
		HTTP:           "on",
		HTTPRoutes:     []string{"/api/users/{user}/orders/{order}", "/health"},
		HTTPMaxSockets: 2048,
		HTTPMaxPending: 16,
		HTTPMaxSeries:  3000,
		HTTPMaxRoutes:  50,
		DNS:            "off",
		DNSTimeout:     3 * time.Second,
		CIDRNames:      CIDRNames{"10.250.9.0/24": "partner-vpn"},
		OTLPEndpoint:   "tempo.monitoring:4317",
		OTLPInsecure:   "on",
		MetricsAddr:    "[::1]:9999",
		DeletedGrace:   90 * time.Second,
		SweepInterval:  time.Minute,
		LogLevel:       "warn",
		Cluster:        "prod-eu",
		RingBuffer:     512 << 10,
		EventQueue:     1024,
		MaxSockets:     4096,
		MaxSeries:      500,
		LabelBudgets:   map[string]int{"destination_workload": 50, "source_namespace": 3},
		Node:           "worker-1",

		MimirURL:             "http://mimir.monitoring:8080/api/v1/push",
		MimirTenant:          "team-a",
		MimirUsername:        "agent",
		MimirPasswordFile:    mimirPassword,
		MimirBearerTokenFile: "",
		MimirCAFile:          mimirCA,
		MimirInterval:        30 * time.Second,
		MimirQueue:           5000,
		LokiURL:              "https://loki.monitoring:3100/loki/api/v1/push",
		LokiTenant:           "team-b",
		LokiUsername:         "",
		LokiPasswordFile:     "",
		LokiBearerTokenFile:  lokiToken,
		LokiCAFile:           lokiCA,
		LokiQueue:            300,
		LokiRate:             25,
		OTLPTenant:           "team-c",
		OTLPBearerTokenFile:  "",
		OTLPCAFile:           "",
		OTLPQueue:            100,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("Load =\n %+v\nwant\n %+v", got, want)
	}
}

func TestFileLabelBudgets(t *testing.T) {
	for _, tc := range []struct {
		name, yaml string
		want       map[string]int
	}{
		{"flow map", "label_budgets: {destination_workload: 50}\n", map[string]int{"destination_workload": 50}},
		{"block map", "label_budgets:\n  destination_workload: 50\n  qname: 1\n", map[string]int{"destination_workload": 50, "qname": 1}},
		{"empty map", "label_budgets: {}\n", map[string]int{}},
		{"absent", "cluster: x\n", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustLoad(t, []string{"--config", writeConfig(t, tc.yaml)}, nil).LabelBudgets
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("LabelBudgets = %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestFileEmptyOrPartial(t *testing.T) {
	for _, tc := range []struct{ name, yaml string }{
		{"empty", ""},
		{"comment only", "# nothing here\n"},
		{"document marker", "---\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := mustLoad(t, []string{"--config", writeConfig(t, tc.yaml)}, nil)
			if want := Default(); !reflect.DeepEqual(got, want) {
				t.Errorf("Load = %+v, want defaults %+v", got, want)
			}
		})
	}
	t.Run("partial keeps other defaults", func(t *testing.T) {
		got := mustLoad(t, []string{"--config", writeConfig(t, "max_series: 3\n")}, nil)
		want := Default()
		want.MaxSeries = 3
		if !reflect.DeepEqual(got, want) {
			t.Errorf("Load = %+v, want %+v", got, want)
		}
	})
}

func TestAcceptedBoundaryValues(t *testing.T) {
	for _, tc := range []struct {
		arg  string
		get  func(Config) any
		want any
	}{
		{"--sweep-interval=1s", func(c Config) any { return c.SweepInterval }, time.Second},
		{"--sweep-interval=1000ms", func(c Config) any { return c.SweepInterval }, time.Second},
		{"--sweep-interval=24h", func(c Config) any { return c.SweepInterval }, 24 * time.Hour},
		{"--metrics-addr=:0", func(c Config) any { return c.MetricsAddr }, ":0"},
		{"--metrics-addr=:65535", func(c Config) any { return c.MetricsAddr }, ":65535"},
		{"--metrics-addr=localhost:9810", func(c Config) any { return c.MetricsAddr }, "localhost:9810"},
		{"--metrics-addr=[::]:80", func(c Config) any { return c.MetricsAddr }, "[::]:80"},
		{"--ring-buffer-size=4096", func(c Config) any { return c.RingBuffer }, Size(4096)},
		{"--ring-buffer-size=4KiB", func(c Config) any { return c.RingBuffer }, Size(4096)},
		{"--ring-buffer-size=1GiB", func(c Config) any { return c.RingBuffer }, Size(1 << 30)},
		{"--ring-buffer-size=1073741824", func(c Config) any { return c.RingBuffer }, Size(1 << 30)},
		{"--max-sockets=1", func(c Config) any { return c.MaxSockets }, 1},
		{"--event-queue=1", func(c Config) any { return c.EventQueue }, 1},
		{"--max-series=1", func(c Config) any { return c.MaxSeries }, 1},
		{"--http-max-sockets=1", func(c Config) any { return c.HTTPMaxSockets }, 1},
		{"--http-max-pending=1", func(c Config) any { return c.HTTPMaxPending }, 1},
		{"--http-max-pending=1024", func(c Config) any { return c.HTTPMaxPending }, 1024},
		{"--http-max-series=1", func(c Config) any { return c.HTTPMaxSeries }, 1},
		{"--http-max-routes=1", func(c Config) any { return c.HTTPMaxRoutes }, 1},
		{"--cluster=", func(c Config) any { return c.Cluster }, ""},
		{"--cluster=a b", func(c Config) any { return c.Cluster }, "a b"},
		{"--log-level=debug", func(c Config) any { return c.LogLevel }, "debug"},
		{"--kubernetes=off", func(c Config) any { return c.Kubernetes }, "off"},
		{"--node=", func(c Config) any { return c.Node }, ""},
		{"--mimir-interval=1s", func(c Config) any { return c.MimirInterval }, time.Second},
		{"--mimir-interval=1000ms", func(c Config) any { return c.MimirInterval }, time.Second},
		{"--mimir-queue=1", func(c Config) any { return c.MimirQueue }, 1},
		{"--loki-queue=1", func(c Config) any { return c.LokiQueue }, 1},
		{"--loki-rate=1", func(c Config) any { return c.LokiRate }, 1},
		{"--otlp-queue=1", func(c Config) any { return c.OTLPQueue }, 1},
		{"--mimir-url=", func(c Config) any { return c.MimirURL }, ""},
		{"--loki-url=", func(c Config) any { return c.LokiURL }, ""},
		{"--mimir-tenant=", func(c Config) any { return c.MimirTenant }, ""},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			if got := tc.get(mustLoad(t, []string{tc.arg}, nil)); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %#v, want %#v", got, tc.want)
			}
		})
	}
}

func TestUsageErrors(t *testing.T) {
	const missing = "does-not-exist.yaml"
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		yaml string // when set, written to a file named by --config
		want []string
	}{
		// Flags.
		{name: "kubernetes maybe", args: []string{"--kubernetes=maybe"},
			want: []string{"-kubernetes", `"maybe"`, "auto, on or off"}},
		{name: "metrics-addr without port", args: []string{"--metrics-addr=nohost"},
			want: []string{"-metrics-addr", `"nohost"`, "HOST:PORT"}},
		{name: "metrics-addr port too big", args: []string{"--metrics-addr=:99999"},
			want: []string{"-metrics-addr", `":99999"`, `port "99999"`}},
		{name: "metrics-addr port 65536", args: []string{"--metrics-addr=:65536"},
			want: []string{"-metrics-addr", `"65536"`}},
		{name: "metrics-addr port negative", args: []string{"--metrics-addr=:-1"},
			want: []string{"-metrics-addr", `"-1"`}},
		{name: "metrics-addr port name", args: []string{"--metrics-addr=:http"},
			want: []string{"-metrics-addr", `"http"`}},
		{name: "metrics-addr empty", args: []string{"--metrics-addr="},
			want: []string{"-metrics-addr", "HOST:PORT"}},
		{name: "sweep-interval abc", args: []string{"--sweep-interval=abc"},
			want: []string{"-sweep-interval", `"abc"`, "duration"}},
		{name: "sweep-interval bare number", args: []string{"--sweep-interval=10"},
			want: []string{"-sweep-interval", `"10"`}},
		{name: "sweep-interval 500ms", args: []string{"--sweep-interval=500ms"},
			want: []string{"-sweep-interval", "500ms", "at least 1s"}},
		{name: "sweep-interval 999ms", args: []string{"--sweep-interval=999ms"},
			want: []string{"-sweep-interval", "999ms", "at least 1s"}},
		{name: "sweep-interval negative", args: []string{"--sweep-interval=-5s"},
			want: []string{"-sweep-interval", "-5s", "at least 1s"}},
		{name: "log-level loud", args: []string{"--log-level=loud"},
			want: []string{"-log-level", `"loud"`, "debug, info, warn or error"}},
		{name: "log-level wrong case", args: []string{"--log-level=INFO"},
			want: []string{"-log-level", `"INFO"`}},
		{name: "ring-buffer-size 3000", args: []string{"--ring-buffer-size=3000"},
			want: []string{"-ring-buffer-size", `"3000"`, "power of two", "3000"}},
		{name: "ring-buffer-size 2GiB", args: []string{"--ring-buffer-size=2GiB"},
			want: []string{"-ring-buffer-size", `"2GiB"`, "1GiB", "2147483648"}},
		{name: "ring-buffer-size 2^31 bytes", args: []string{"--ring-buffer-size=2147483648"},
			want: []string{"-ring-buffer-size", `"2147483648"`}},
		{name: "ring-buffer-size beyond uint32", args: []string{"--ring-buffer-size=4294967296"},
			want: []string{"-ring-buffer-size", `"4294967296"`}},
		{name: "ring-buffer-size 2KiB", args: []string{"--ring-buffer-size=2KiB"},
			want: []string{"-ring-buffer-size", `"2KiB"`, "4KiB", "2048"}},
		{name: "ring-buffer-size 0", args: []string{"--ring-buffer-size=0"},
			want: []string{"-ring-buffer-size", `"0"`}},
		{name: "ring-buffer-size bad unit", args: []string{"--ring-buffer-size=8MB"},
			want: []string{"-ring-buffer-size", `"8MB"`, "8MiB"}},
		{name: "ring-buffer-size stacked units", args: []string{"--ring-buffer-size=4KiBMiB"},
			want: []string{"-ring-buffer-size", `"4KiBMiB"`}},
		{name: "max-sockets 0", args: []string{"--max-sockets=0"},
			want: []string{"-max-sockets", `"0"`, "positive"}},
		{name: "max-sockets negative", args: []string{"--max-sockets=-3"},
			want: []string{"-max-sockets", `"-3"`, "positive"}},
		{name: "max-sockets text", args: []string{"--max-sockets=lots"},
			want: []string{"-max-sockets", `"lots"`, "positive"}},
		{name: "http-max-sockets 0", args: []string{"--http-max-sockets=0"},
			want: []string{"-http-max-sockets", `"0"`, "positive"}},
		{name: "http-max-pending 0", args: []string{"--http-max-pending=0"},
			want: []string{"-http-max-pending", `"0"`, "from 1 to 1024"}},
		{name: "http-max-pending 1025", args: []string{"--http-max-pending=1025"},
			want: []string{"-http-max-pending", `"1025"`, "from 1 to 1024"}},
		{name: "http-max-pending text", args: []string{"--http-max-pending=many"},
			want: []string{"-http-max-pending", `"many"`, "from 1 to 1024"}},
		{name: "http-max-series negative", args: []string{"--http-max-series=-1"},
			want: []string{"-http-max-series", `"-1"`, "positive"}},
		{name: "http-max-routes 0", args: []string{"--http-max-routes=0"},
			want: []string{"-http-max-routes", `"0"`, "positive"}},
		{name: "event-queue 0", args: []string{"--event-queue=0"},
			want: []string{"-event-queue", `"0"`, "positive"}},
		{name: "max-series 1.5", args: []string{"--max-series=1.5"},
			want: []string{"-max-series", `"1.5"`, "positive"}},
		{name: "flag without value", args: []string{"--log-level"},
			want: []string{"-log-level", "needs an argument"}},
		{name: "http yes", args: []string{"--http=yes"},
			want: []string{"-http", `"yes"`, "on or off"}},
		{name: "http auto", args: []string{"--http=auto"},
			want: []string{"-http", `"auto"`, "on or off"}},
		{name: "otlp-insecure true", args: []string{"--otlp-insecure=true"},
			want: []string{"-otlp-insecure", `"true"`, "on or off"}},
		{name: "otlp-endpoint without port", args: []string{"--otlp-endpoint=tempo"},
			want: []string{"-otlp-endpoint", `"tempo"`, "HOST:PORT"}},
		{name: "otlp-endpoint bad port", args: []string{"--otlp-endpoint=tempo:70000"},
			want: []string{"-otlp-endpoint", `"70000"`}},
		{name: "http-routes relative", args: []string{"--http-routes", "/ok/{id},users/{id}"},
			want: []string{"-http-routes", `"users/{id}"`, "starting with /"}},
		{name: "http-routes query", args: []string{"--http-routes=/a?b=1"},
			want: []string{"-http-routes", `"/a?b=1"`}},
		{name: "http-routes inner space", args: []string{"--http-routes=/a b"},
			want: []string{"-http-routes", `"/a b"`}},
		{name: "http-routes partial placeholder", args: []string{"--http-routes=/users/id{x}"},
			want: []string{"-http-routes", `"id{x}"`, "whole segment"}},
		{name: "http-routes empty placeholder", args: []string{"--http-routes=/users/{}"},
			want: []string{"-http-routes", `"{}"`}},
		{name: "unknown flag", args: []string{"--bogus=1"},
			want: []string{"-bogus", "not defined"}},
		{name: "unknown flag label-budgets", args: []string{"--label-budgets=x"},
			want: []string{"-label-budgets", "not defined"}},

		// Positional arguments.
		{name: "positional", args: []string{"run"},
			want: []string{`"run"`, "unexpected argument"}},
		{name: "positional after flags", args: []string{"--log-level=debug", "extra", "more"},
			want: []string{`"extra"`, "unexpected argument"}},
		{name: "positional after double dash", args: []string{"--", "--log-level=debug"},
			want: []string{`"--log-level=debug"`, "unexpected argument"}},

		// Environment.
		{name: "env sweep interval", vars: map[string]string{"STRATA_SWEEP_INTERVAL": "x"},
			want: []string{"STRATA_SWEEP_INTERVAL", `"x"`, "duration"}},
		{name: "env sweep interval too short", vars: map[string]string{"STRATA_SWEEP_INTERVAL": "100ms"},
			want: []string{"STRATA_SWEEP_INTERVAL", `"100ms"`, "at least 1s"}},
		{name: "env kubernetes", vars: map[string]string{"STRATA_KUBERNETES": "maybe"},
			want: []string{"STRATA_KUBERNETES", `"maybe"`}},
		{name: "env metrics addr", vars: map[string]string{"STRATA_METRICS_ADDR": "nohost"},
			want: []string{"STRATA_METRICS_ADDR", `"nohost"`}},
		{name: "env log level", vars: map[string]string{"STRATA_LOG_LEVEL": "loud"},
			want: []string{"STRATA_LOG_LEVEL", `"loud"`}},
		{name: "env ring buffer", vars: map[string]string{"STRATA_RING_BUFFER_SIZE": "3000"},
			want: []string{"STRATA_RING_BUFFER_SIZE", `"3000"`}},
		{name: "env max sockets", vars: map[string]string{"STRATA_MAX_SOCKETS": "0"},
			want: []string{"STRATA_MAX_SOCKETS", `"0"`}},
		{name: "env http", vars: map[string]string{"STRATA_HTTP": "1"},
			want: []string{"STRATA_HTTP", `"1"`, "on or off"}},
		{name: "env http routes", vars: map[string]string{"STRATA_HTTP_ROUTES": "/a,b"},
			want: []string{"STRATA_HTTP_ROUTES", `"/a,b"`, `"b"`}},
		{name: "env otlp endpoint", vars: map[string]string{"STRATA_OTLP_ENDPOINT": "tempo"},
			want: []string{"STRATA_OTLP_ENDPOINT", `"tempo"`}},
		{name: "env otlp insecure", vars: map[string]string{"STRATA_OTLP_INSECURE": "yes"},
			want: []string{"STRATA_OTLP_INSECURE", `"yes"`}},
		{name: "env mimir interval", vars: map[string]string{"STRATA_MIMIR_INTERVAL": "0s"},
			want: []string{`invalid STRATA_MIMIR_INTERVAL="0s": must be at least 1s, not 0s`}},
		{name: "env loki queue", vars: map[string]string{"STRATA_LOKI_QUEUE": "0"},
			want: []string{`invalid STRATA_LOKI_QUEUE="0": must be a positive whole number, not "0"`}},
		{name: "env loki rate", vars: map[string]string{"STRATA_LOKI_RATE": "ten"},
			want: []string{`invalid STRATA_LOKI_RATE="ten": must be a positive whole number, not "ten"`}},
		{name: "env mimir queue", vars: map[string]string{"STRATA_MIMIR_QUEUE": "-1"},
			want: []string{`invalid STRATA_MIMIR_QUEUE="-1": must be a positive whole number, not "-1"`}},
		{name: "env otlp queue", vars: map[string]string{"STRATA_OTLP_QUEUE": "1e3"},
			want: []string{`invalid STRATA_OTLP_QUEUE="1e3": must be a positive whole number, not "1e3"`}},
		// A valid flag does not excuse a bad environment variable.
		{name: "env bad even when flag set", args: []string{"--sweep-interval=5s"},
			vars: map[string]string{"STRATA_SWEEP_INTERVAL": "x"},
			want: []string{"STRATA_SWEEP_INTERVAL", `"x"`}},

		// Config file.
		{name: "file unknown key", yaml: "metrics_adr: \":1\"\n",
			want: []string{"config file", "metrics_adr", "not found"}},
		{name: "file flag-style key", yaml: "metrics-addr: \":1\"\n",
			want: []string{"config file", "metrics-addr"}},
		{name: "file sweep_interval 10ms", yaml: "sweep_interval: 10ms\n",
			want: []string{"config file", "sweep_interval", "10ms", "at least 1s"}},
		{name: "file kubernetes maybe", yaml: "kubernetes: maybe\n",
			want: []string{"config file", "kubernetes", `"maybe"`}},
		{name: "file kubernetes empty", yaml: "kubernetes: \"\"\n",
			want: []string{"config file", "kubernetes", `""`}},
		{name: "file http maybe", yaml: "http: maybe\n",
			want: []string{"config file", "http", `"maybe"`, "on or off"}},
		{name: "file otlp_insecure bool", yaml: "otlp_insecure: true\n",
			want: []string{"config file", "otlp_insecure", `"true"`}},
		{name: "file otlp_endpoint no port", yaml: "otlp_endpoint: tempo\n",
			want: []string{"config file", "otlp_endpoint", `"tempo"`}},
		{name: "file http_routes relative", yaml: "http_routes: [/ok, \"users/{id}\"]\n",
			want: []string{"config file", "http_routes", `"users/{id}"`}},
		{name: "file http_routes scalar", yaml: "http_routes: /a\n",
			want: []string{"config file", "/a"}},
		{name: "file log_level loud", yaml: "log_level: loud\n",
			want: []string{"config file", "log_level", `"loud"`}},
		{name: "file metrics_addr nohost", yaml: "metrics_addr: nohost\n",
			want: []string{"config file", "metrics_addr", `"nohost"`}},
		{name: "file metrics_addr bad port", yaml: "metrics_addr: \":99999\"\n",
			want: []string{"config file", "metrics_addr", `"99999"`}},
		{name: "file max_sockets 0", yaml: "max_sockets: 0\n",
			want: []string{"config file", "max_sockets", `"0"`}},
		{name: "file http_max_pending 2000", yaml: "http_max_pending: 2000\n",
			want: []string{"config file", "http_max_pending", `must be a whole number from 1 to 1024, not "2000"`}},
		{name: "file http_max_routes 0", yaml: "http_max_routes: 0\n",
			want: []string{"config file", "http_max_routes", `must be a positive whole number, not "0"`}},
		{name: "file mimir_queue 0", yaml: "mimir_queue: 0\n",
			want: []string{"config file", "mimir_queue", `must be a positive whole number, not "0"`}},
		{name: "file loki_rate text", yaml: "loki_rate: fast\n",
			want: []string{"config file", "fast"}},
		{name: "file otlp_queue negative", yaml: "otlp_queue: -5\n",
			want: []string{"config file", "otlp_queue", `must be a positive whole number, not "-5"`}},
		{name: "file mimir_interval 500ms", yaml: "mimir_interval: 500ms\n",
			want: []string{"config file", "mimir_interval", "must be at least 1s, not 500ms"}},
		{name: "file loki_url no scheme", yaml: "loki_url: loki:3100\n",
			want: []string{"config file", "loki_url", `not "loki:3100"`}},
		{name: "file event_queue negative", yaml: "event_queue: -1\n",
			want: []string{"config file", "event_queue", `"-1"`}},
		{name: "file event_queue text", yaml: "event_queue: abc\n",
			want: []string{"config file", "abc"}},
		// Size's own UnmarshalYAML rejects these before the per-key check, so
		// the message carries the value but not the key.
		{name: "file ring_buffer_size 3000", yaml: "ring_buffer_size: 3000\n",
			want: []string{"config file", "power of two", "3000"}},
		{name: "file ring_buffer_size junk", yaml: "ring_buffer_size: big\n",
			want: []string{"config file", `"big"`}},
		{name: "file label_budgets 0", yaml: "label_budgets: {destination_workload: 0}\n",
			want: []string{"config file", "label_budgets.destination_workload", "at least 1"}},
		{name: "file label_budgets negative", yaml: "label_budgets:\n  qname: 5\n  source_namespace: -2\n",
			want: []string{"config file", "label_budgets.source_namespace", "at least 1"}},
		{name: "file label_budgets typo", yaml: "label_budgets: {destination_workloads: 5}\n",
			want: []string{"config file", "label_budgets.destination_workloads: no such label", "destination_workload, destination_service"}},
		{name: "file label_budgets not int", yaml: "label_budgets: {qname: many}\n",
			want: []string{"config file", "many"}},
		{name: "file not a mapping", yaml: "- a\n- b\n",
			want: []string{"config file"}},
		{name: "file malformed", yaml: "cluster: [unclosed\n",
			want: []string{"config file"}},
		{name: "file duplicate key", yaml: "cluster: a\ncluster: b\n",
			want: []string{"config file", "cluster"}},
		// A bad file is reported even when env and flags would override it.
		{name: "file bad despite overrides", yaml: "sweep_interval: 10ms\n",
			args: []string{"--sweep-interval=5s"}, vars: map[string]string{"STRATA_SWEEP_INTERVAL": "5s"},
			want: []string{"config file", "sweep_interval", "10ms"}},
		{name: "missing config file via flag", args: []string{"--config", missing},
			want: []string{"config file", missing}},
		{name: "missing config file via env", vars: map[string]string{"STRATA_CONFIG": missing},
			want: []string{"config file", missing}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.yaml != "" {
				p := writeConfig(t, tc.yaml)
				args = append([]string{"--config", p}, args...)
				tc.want = append(tc.want, p)
			}
			_, _, err := load(t, args, tc.vars)
			if err == nil {
				t.Fatalf("Load(%q, %v) succeeded, want UsageError", args, tc.vars)
			}
			var ue UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("Load error %T %q is not a UsageError", err, err)
			}
			if errors.Is(err, flag.ErrHelp) {
				t.Errorf("Load error %q should not be flag.ErrHelp", err)
			}
			if ue.Error() != err.Error() || ue.Err == nil {
				t.Errorf("UsageError %+v does not carry the error %q", ue, err)
			}
			msg := err.Error()
			for _, w := range tc.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
		})
	}
}

func TestMissingConfigFileUnwraps(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nope.yaml")
	_, _, err := load(t, []string{"--config", p}, nil)
	var ue UsageError
	if !errors.As(err, &ue) {
		t.Fatalf("error %v is not a UsageError", err)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("error %v does not wrap fs.ErrNotExist", err)
	}
	if !strings.Contains(err.Error(), p) {
		t.Errorf("error %q does not name the file %s", err, p)
	}
}

func TestEnvErrorWrapsCause(t *testing.T) {
	_, _, err := load(t, nil, map[string]string{"STRATA_LOG_LEVEL": "loud"})
	var ue UsageError
	if !errors.As(err, &ue) {
		t.Fatalf("error %v is not a UsageError", err)
	}
	if got, want := err.Error(), `invalid STRATA_LOG_LEVEL="loud": must be debug, info, warn or error, not "loud"`; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
	if errors.Unwrap(ue) != ue.Err {
		t.Errorf("UsageError.Unwrap() did not return Err")
	}
}

func TestExactFlagErrorMessages(t *testing.T) {
	for _, tc := range []struct {
		arg, want string
	}{
		{"--kubernetes=maybe", `invalid value "maybe" for flag -kubernetes: must be auto, on or off, not "maybe"`},
		{"--metrics-addr=nohost", `invalid value "nohost" for flag -metrics-addr: must be HOST:PORT (e.g. :9810 or 127.0.0.1:9810), not "nohost"`},
		{"--metrics-addr=:99999", `invalid value ":99999" for flag -metrics-addr: port "99999" is not a number from 0 to 65535`},
		{"--sweep-interval=abc", `invalid value "abc" for flag -sweep-interval: must be a duration like 10s, not "abc"`},
		{"--sweep-interval=500ms", `invalid value "500ms" for flag -sweep-interval: must be at least 1s, not 500ms`},
		{"--log-level=loud", `invalid value "loud" for flag -log-level: must be debug, info, warn or error, not "loud"`},
		{"--ring-buffer-size=3000", `invalid value "3000" for flag -ring-buffer-size: must be a power of two from 4KiB to 1GiB, not 3000`},
		{"--ring-buffer-size=2GiB", `invalid value "2GiB" for flag -ring-buffer-size: must be a power of two from 4KiB to 1GiB, not 2147483648`},
		{"--max-sockets=0", `invalid value "0" for flag -max-sockets: must be a positive whole number, not "0"`},
		{"--mimir-interval=999ms", `invalid value "999ms" for flag -mimir-interval: must be at least 1s, not 999ms`},
		{"--mimir-interval=15", `invalid value "15" for flag -mimir-interval: must be a duration like 10s, not "15"`},
		{"--mimir-queue=0", `invalid value "0" for flag -mimir-queue: must be a positive whole number, not "0"`},
		{"--loki-queue=-1", `invalid value "-1" for flag -loki-queue: must be a positive whole number, not "-1"`},
		{"--loki-rate=0.5", `invalid value "0.5" for flag -loki-rate: must be a positive whole number, not "0.5"`},
		{"--otlp-queue=many", `invalid value "many" for flag -otlp-queue: must be a positive whole number, not "many"`},
		{"--mimir-url=ftp://x", `invalid value "ftp://x" for flag -mimir-url: must be an http:// or https:// URL with a host, not "ftp://x"`},
		{"--loki-url=localhost:3100", `invalid value "localhost:3100" for flag -loki-url: must be an http:// or https:// URL with a host, not "localhost:3100"`},
		{"--bogus", `flag provided but not defined: -bogus`},
	} {
		t.Run(tc.arg, func(t *testing.T) {
			_, _, err := load(t, []string{tc.arg}, nil)
			if err == nil || err.Error() != tc.want {
				t.Errorf("error = %v, want %q", err, tc.want)
			}
		})
	}
}

func TestFlagErrorPrintsUsage(t *testing.T) {
	_, stderr, err := load(t, []string{"--bogus"}, nil)
	if err == nil {
		t.Fatal("Load succeeded, want error")
	}
	out := stderr.String()
	for _, w := range []string{"flag provided but not defined: -bogus", "Usage: strata-agent", "-metrics-addr"} {
		if !strings.Contains(out, w) {
			t.Errorf("stderr does not contain %q:\n%s", w, out)
		}
	}
}

func TestHelp(t *testing.T) {
	for _, arg := range []string{"--help", "-help", "-h", "--h"} {
		t.Run(arg, func(t *testing.T) {
			_, stderr, err := load(t, []string{arg}, map[string]string{"STRATA_CONFIG": "/etc/strata/agent.yaml"})
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("Load(%s) error = %v, want flag.ErrHelp", arg, err)
			}
			var ue UsageError
			if errors.As(err, &ue) {
				t.Errorf("Load(%s) help error is a UsageError; callers treat help as success", arg)
			}
			out := stderr.String()
			wants := []string{
				"Usage: strata-agent [flags]",
				"STRATA_<NAME>",
				"STRATA_METRICS_ADDR",
				"STRATA_CONFIG",
				"metrics_addr",
				"Flags override the environment, which overrides the file.",
				"-config",
				"/etc/strata/agent.yaml", // STRATA_CONFIG shown as the --config default
			}
			for _, s := range settings {
				wants = append(wants, "-"+s.name, s.help)
			}
			for _, w := range wants {
				if !strings.Contains(out, w) {
					t.Errorf("usage does not mention %q:\n%s", w, out)
				}
			}
			// Defaults are shown with the flags.
			for _, w := range []string{"(default :9810)", "(default auto)", "(default 10s)", "(default info)", "(default off)", "(default 8388608)", "(default 196608)", "(default 262144)", "(default 20000)",
				"(default 15s)", "(default 100000)", "(default 10000)", "(default 10)", "(default 4096)"} {
				if !strings.Contains(out, w) {
					t.Errorf("usage does not show default %q:\n%s", w, out)
				}
			}
		})
	}
}

// Help wins over other flags that come before it, and stops parsing after it.
func TestHelpAfterOtherFlags(t *testing.T) {
	_, _, err := load(t, []string{"--log-level=debug", "--help", "--bogus"}, nil)
	if !errors.Is(err, flag.ErrHelp) {
		t.Errorf("error = %v, want flag.ErrHelp", err)
	}
}

func TestSizeSet(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
		ok   bool
	}{
		{"4096", 4096, true},
		{"8388608", 8 << 20, true},
		{"4KiB", 4 << 10, true},
		{"512KiB", 512 << 10, true},
		{"8MiB", 8 << 20, true},
		{"1GiB", 1 << 30, true},
		{"1024MiB", 1 << 30, true},
		{"1048576KiB", 1 << 30, true},
		{"", 0, false},
		{"KiB", 0, false},
		{"0", 0, false},
		{"2048", 0, false},
		{"3000", 0, false},
		{"3KiB", 0, false},
		{"6MiB", 0, false},
		{"2GiB", 0, false},
		{"2048MiB", 0, false},
		{"4294967295", 0, false},
		{"4294967296", 0, false},
		{"-4096", 0, false},
		{"+4096", 0, false},
		{" 4096", 0, false},
		{"4 KiB", 0, false},
		{"4kib", 0, false},
		{"4KB", 0, false},
		{"4K", 0, false},
		{"8MiBKiB", 0, false},
		{"4KiBMiB", 0, false},
		{"1KiBKiB", 0, false},
		{"0x1000", 0, false},
		{"4096.0", 0, false},
	} {
		t.Run(tc.in, func(t *testing.T) {
			// Repeat to catch results that depend on map iteration order.
			for i := 0; i < 50; i++ {
				s := Size(12345)
				err := s.Set(tc.in)
				if tc.ok {
					if err != nil || s != tc.want {
						t.Fatalf("Set(%q) = %d, %v; want %d, nil", tc.in, s, err, tc.want)
					}
					continue
				}
				if err == nil {
					t.Fatalf("Set(%q) = %d, nil on try %d; want error", tc.in, s, i)
				}
				if s != 12345 {
					t.Fatalf("failed Set(%q) changed the value to %d", tc.in, s)
				}
			}
		})
	}
}

func TestSizeString(t *testing.T) {
	for _, tc := range []struct {
		s    Size
		want string
	}{
		{0, "0"},
		{4096, "4096"},
		{8 << 20, "8388608"},
		{1 << 30, "1073741824"},
	} {
		if got := tc.s.String(); got != tc.want {
			t.Errorf("Size(%d).String() = %q, want %q", uint32(tc.s), got, tc.want)
		}
	}
}

// Every value type must accept what its own String produces; Load relies on
// that to re-apply flags and to re-check the file.
func TestValuesRoundTrip(t *testing.T) {
	cfgs := []Config{Default(), {
		DeletedGrace:   time.Hour,
		Kubernetes:     "off",
		HTTP:           "on",
		HTTPRoutes:     []string{"/a/{b}", "/c"},
		HTTPMaxSockets: 1,
		HTTPMaxPending: 1024,
		HTTPMaxSeries:  1 << 40,
		HTTPMaxRoutes:  1,
		DNS:            "off",
		DNSTimeout:     time.Hour,
		CIDRNames:      CIDRNames{"10.0.0.0/8": "corp", "::/0": "v6"},
		OTLPEndpoint:   "tempo:4317",
		OTLPInsecure:   "on",
		MetricsAddr:    "[::1]:1",
		SweepInterval:  90*time.Minute + 1500*time.Millisecond,
		LogLevel:       "error",
		Cluster:        "c",
		RingBuffer:     1 << 30,
		EventQueue:     1,
		MaxSockets:     7,
		MaxSeries:      1 << 40,
		Node:           "n",

		MimirURL:             "https://mimir:8443/api/v1/push?a=b#f",
		MimirTenant:          "t1",
		MimirUsername:        "u",
		MimirPasswordFile:    fixture("roundtrip-mimir-password"),
		MimirBearerTokenFile: fixture("roundtrip-mimir-token"),
		MimirCAFile:          fixture("roundtrip-mimir-ca"),
		MimirInterval:        time.Hour + time.Millisecond*1500,
		MimirQueue:           1,
		LokiURL:              "http://[fe80::1]:3100/loki/api/v1/push",
		LokiTenant:           "t2",
		LokiUsername:         "v",
		LokiPasswordFile:     fixture("roundtrip-loki-password"),
		LokiBearerTokenFile:  fixture("roundtrip-loki-token"),
		LokiCAFile:           fixture("roundtrip-loki-ca"),
		LokiQueue:            2,
		LokiRate:             1 << 20,
		OTLPTenant:           "t3",
		OTLPBearerTokenFile:  fixture("roundtrip-otlp-token"),
		OTLPCAFile:           fixture("roundtrip-otlp-ca"),
		OTLPQueue:            3,
	}}
	for _, c := range cfgs {
		for _, st := range settings {
			orig := c
			v := st.value(&c)
			if err := v.Set(v.String()); err != nil {
				t.Errorf("%s: Set(String()=%q) error: %v", st.name, v.String(), err)
			}
			if !reflect.DeepEqual(c, orig) {
				t.Errorf("%s: round trip changed config from %+v to %+v", st.name, orig, c)
			}
		}
	}
}

func TestSettingsTable(t *testing.T) {
	seen := map[string]bool{}
	for _, st := range settings {
		if seen[st.name] {
			t.Errorf("setting %q declared twice", st.name)
		}
		seen[st.name] = true
		if st.help == "" {
			t.Errorf("setting %q has no help", st.name)
		}
		if st.name != strings.ToLower(st.name) || strings.Contains(st.name, "_") {
			t.Errorf("setting %q should be lower-case kebab", st.name)
		}
		if got := s(st.name).name; got != st.name {
			t.Errorf("s(%q).name = %q", st.name, got)
		}
	}
	if seen["config"] {
		t.Error(`"config" must not be a setting; it is handled separately`)
	}
	// Every yaml key of Config except label_budgets is a setting.
	typ := reflect.TypeOf(Config{})
	for i := 0; i < typ.NumField(); i++ {
		key := typ.Field(i).Tag.Get("yaml")
		if key == "label_budgets" {
			continue
		}
		if !seen[strings.ReplaceAll(key, "_", "-")] {
			t.Errorf("yaml key %q has no setting", key)
		}
	}
}

func TestSettingLookupPanicsOnUnknown(t *testing.T) {
	defer func() {
		if r := recover(); r == nil {
			t.Error("s(\"nope\") did not panic")
		}
	}()
	s("nope")
}

// A flag that is not given does not undo the environment.
func TestUnsetFlagKeepsEnvironment(t *testing.T) {
	cfg := mustLoad(t, []string{"--log-level", "error"}, map[string]string{"STRATA_KUBERNETES": "off"})
	if cfg.Kubernetes != "off" || cfg.LogLevel != "error" {
		t.Errorf("kubernetes=%q log_level=%q, want off, error", cfg.Kubernetes, cfg.LogLevel)
	}
}

func TestRoutePatterns(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		yaml string
		want []string
	}{
		{name: "flag trims and splits", args: []string{"--http-routes", " /api/users/{user} , /files/{name}"},
			want: []string{"/api/users/{user}", "/files/{name}"}},
		{name: "flag drops empty items", args: []string{"--http-routes=,/a,, ,/b,"},
			want: []string{"/a", "/b"}},
		{name: "flag root", args: []string{"--http-routes=/"}, want: []string{"/"}},
		{name: "env", vars: map[string]string{"STRATA_HTTP_ROUTES": "/x/{id}/y,/z"},
			want: []string{"/x/{id}/y", "/z"}},
		{name: "file list", yaml: "http_routes: [\"/a/{x}\", /b]\n", want: []string{"/a/{x}", "/b"}},
		{name: "file block list", yaml: "http_routes:\n  - /a\n  - /b/{c}/d\n", want: []string{"/a", "/b/{c}/d"}},
		{name: "file empty list", yaml: "http_routes: []\n", want: nil},
		{name: "empty flag clears file", yaml: "http_routes: [/a]\n", args: []string{"--http-routes="}, want: nil},
		{name: "empty flag clears env", vars: map[string]string{"STRATA_HTTP_ROUTES": "/a"}, args: []string{"--http-routes="}, want: nil},
		{name: "empty env keeps file", yaml: "http_routes: [/a]\n", vars: map[string]string{"STRATA_HTTP_ROUTES": ""}, want: []string{"/a"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.yaml != "" {
				args = append([]string{"--config", writeConfig(t, tc.yaml)}, args...)
			}
			got := mustLoad(t, args, tc.vars).HTTPRoutes
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("HTTPRoutes = %#v, want %#v", got, tc.want)
			}
		})
	}
}

// The OTLP endpoint is optional: empty means no spans, and an empty flag
// clears a value from the file or the environment.
func TestOTLPEndpointOptional(t *testing.T) {
	file := writeConfig(t, "otlp_endpoint: \"tempo:4317\"\n")
	if got := mustLoad(t, []string{"--config", file}, nil).OTLPEndpoint; got != "tempo:4317" {
		t.Errorf("from file: %q, want tempo:4317", got)
	}
	if got := mustLoad(t, []string{"--config", file, "--otlp-endpoint="}, nil).OTLPEndpoint; got != "" {
		t.Errorf("empty flag over file: %q, want empty", got)
	}
	if got := mustLoad(t, []string{"--otlp-endpoint="}, map[string]string{"STRATA_OTLP_ENDPOINT": ":4317"}).OTLPEndpoint; got != "" {
		t.Errorf("empty flag over env: %q, want empty", got)
	}
	if got := mustLoad(t, nil, map[string]string{"STRATA_OTLP_ENDPOINT": ":4317"}).OTLPEndpoint; got != ":4317" {
		t.Errorf("from env: %q, want :4317", got)
	}
	if got := mustLoad(t, []string{"--config", writeConfig(t, "otlp_endpoint: \"\"\n")}, nil).OTLPEndpoint; got != "" {
		t.Errorf("empty in file: %q, want empty", got)
	}
}

// loadUsageError loads and expects a UsageError with exactly the message want.
func loadUsageError(t *testing.T, args []string, vars map[string]string, want string) error {
	t.Helper()
	_, _, err := load(t, args, vars)
	if err == nil {
		t.Fatalf("Load(%q, %v) succeeded, want error %q", args, vars, want)
	}
	var ue UsageError
	if !errors.As(err, &ue) {
		t.Fatalf("Load error %T %q is not a UsageError", err, err)
	}
	if got := err.Error(); got != want {
		t.Errorf("error =\n %q\nwant\n %q", got, want)
	}
	if ue.Err == nil || ue.Err.Error() != want {
		t.Errorf("UsageError.Err = %v, want %q", ue.Err, want)
	}
	return err
}

func TestPushURL(t *testing.T) {
	for _, v := range []string{
		"http://mimir:8080/api/v1/push",
		"https://loki.example.com/loki/api/v1/push",
		"http://127.0.0.1:3100",
		"https://[::1]:443/p?q=1",
		"HTTPS://upper.example/push",
		"",
	} {
		u := pushURL("http://old/")
		if err := u.Set(v); err != nil || string(u) != v {
			t.Errorf("Set(%q) = %q, %v; want %q, nil", v, u, err, v)
		}
		if got := u.String(); got != v {
			t.Errorf("after Set(%q), String() = %q", v, got)
		}
	}
	for _, v := range []string{
		"ftp://x",
		"localhost:3100",
		"http://",
		"https://",
		"http:///push",
		"mimir/api/v1/push",
		"//mimir:8080/push",
		"http://mimir:port/push",
		" http://mimir",
	} {
		u := pushURL("http://old/")
		err := u.Set(v)
		want := fmt.Sprintf("must be an http:// or https:// URL with a host, not %q", v)
		if err == nil || err.Error() != want {
			t.Errorf("Set(%q) error = %v, want %q", v, err, want)
		}
		if u != "http://old/" {
			t.Errorf("failed Set(%q) changed the value to %q", v, u)
		}
	}
}

func TestPushURLLoad(t *testing.T) {
	const must = "must be an http:// or https:// URL with a host, not "
	t.Run("flag accepts http", func(t *testing.T) {
		cfg := mustLoad(t, []string{"--mimir-url=http://mimir:8080/api/v1/push"}, nil)
		if cfg.MimirURL != "http://mimir:8080/api/v1/push" {
			t.Errorf("MimirURL = %q", cfg.MimirURL)
		}
	})
	t.Run("env accepts https", func(t *testing.T) {
		cfg := mustLoad(t, nil, map[string]string{"STRATA_LOKI_URL": "https://loki.example:3100/loki/api/v1/push"})
		if cfg.LokiURL != "https://loki.example:3100/loki/api/v1/push" {
			t.Errorf("LokiURL = %q", cfg.LokiURL)
		}
	})
	t.Run("empty flag clears env", func(t *testing.T) {
		cfg := mustLoad(t, []string{"--mimir-url="}, map[string]string{"STRATA_MIMIR_URL": "http://mimir/push"})
		if cfg.MimirURL != "" {
			t.Errorf("MimirURL = %q, want empty", cfg.MimirURL)
		}
	})
	for _, tc := range []struct {
		name, setting, value string
	}{
		{"ftp scheme", "mimir-url", "ftp://x"},
		{"no scheme", "loki-url", "localhost:3100"},
		{"no host", "mimir-url", "http://"},
		{"no host https", "loki-url", "https://"},
	} {
		t.Run(tc.name+"/flag", func(t *testing.T) {
			loadUsageError(t, []string{"--" + tc.setting + "=" + tc.value}, nil,
				fmt.Sprintf("invalid value %q for flag -%s: %s%q", tc.value, tc.setting, must, tc.value))
		})
		env := "STRATA_" + strings.ToUpper(strings.ReplaceAll(tc.setting, "-", "_"))
		t.Run(tc.name+"/env", func(t *testing.T) {
			loadUsageError(t, nil, map[string]string{env: tc.value},
				fmt.Sprintf("invalid %s=%q: %s%q", env, tc.value, must, tc.value))
		})
		key := strings.ReplaceAll(tc.setting, "-", "_")
		t.Run(tc.name+"/file", func(t *testing.T) {
			p := writeConfig(t, key+": "+strconv.Quote(tc.value)+"\n")
			loadUsageError(t, []string{"--config", p}, nil,
				fmt.Sprintf("config file %s: %s: %s%q", p, key, must, tc.value))
		})
	}
}

// fileSettings are the settings naming a file that must be readable.
var fileSettings = []struct {
	name string
	get  func(Config) string
}{
	{"mimir-password-file", func(c Config) string { return c.MimirPasswordFile }},
	{"mimir-bearer-token-file", func(c Config) string { return c.MimirBearerTokenFile }},
	{"mimir-ca-file", func(c Config) string { return c.MimirCAFile }},
	{"loki-password-file", func(c Config) string { return c.LokiPasswordFile }},
	{"loki-bearer-token-file", func(c Config) string { return c.LokiBearerTokenFile }},
	{"loki-ca-file", func(c Config) string { return c.LokiCAFile }},
	{"otlp-bearer-token-file", func(c Config) string { return c.OTLPBearerTokenFile }},
	{"otlp-ca-file", func(c Config) string { return c.OTLPCAFile }},
}

func TestFileValue(t *testing.T) {
	existing := fixture("file-value")
	missing := missingFile(t, "secret")

	f := file("before")
	if err := f.Set(existing); err != nil || string(f) != existing {
		t.Errorf("Set(existing) = %q, %v; want %q, nil", f, err, existing)
	}
	if got := f.String(); got != existing {
		t.Errorf("String() = %q, want %q", got, existing)
	}
	if err := f.Set(""); err != nil || f != "" {
		t.Errorf(`Set("") = %q, %v; want "", nil (unset)`, f, err)
	}
	f = file(existing)
	err := f.Set(missing)
	if want := fmt.Sprintf("cannot read %q: no such file or directory", missing); err == nil || err.Error() != want {
		t.Errorf("Set(missing) error = %v, want %q", err, want)
	}
	if !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Set(missing) error %v does not wrap fs.ErrNotExist", err)
	}
	if string(f) != existing {
		t.Errorf("failed Set changed the value to %q", f)
	}
}

func TestFileSettingsLoad(t *testing.T) {
	for _, fsetting := range fileSettings {
		name := fsetting.name
		env := "STRATA_" + strings.ToUpper(strings.ReplaceAll(name, "-", "_"))
		key := strings.ReplaceAll(name, "-", "_")
		// Basic auth needs its other half to pass Config.check.
		var needs []string
		switch name {
		case "mimir-password-file":
			needs = []string{"--mimir-username=u"}
		case "loki-password-file":
			needs = []string{"--loki-username=u"}
		}
		t.Run(name+"/missing flag", func(t *testing.T) {
			p := missingFile(t, name)
			loadUsageError(t, append(needs, "--"+name+"="+p), nil,
				fmt.Sprintf("invalid value %q for flag -%s: cannot read %q: no such file or directory", p, name, p))
		})
		t.Run(name+"/missing env", func(t *testing.T) {
			p := missingFile(t, name)
			err := loadUsageError(t, needs, map[string]string{env: p},
				fmt.Sprintf("invalid %s=%q: cannot read %q: no such file or directory", env, p, p))
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("error %v does not wrap fs.ErrNotExist", err)
			}
		})
		t.Run(name+"/missing in file", func(t *testing.T) {
			p := missingFile(t, name)
			cfgFile := writeConfig(t, key+": "+strconv.Quote(p)+"\n")
			loadUsageError(t, append([]string{"--config", cfgFile}, needs...), nil,
				fmt.Sprintf("config file %s: %s: cannot read %q: no such file or directory", cfgFile, key, p))
		})
		t.Run(name+"/existing", func(t *testing.T) {
			p := fixture("load-" + name)
			if got := fsetting.get(mustLoad(t, append(needs, "--"+name, p), nil)); got != p {
				t.Errorf("%s = %q, want %q", name, got, p)
			}
		})
		t.Run(name+"/empty means unset", func(t *testing.T) {
			if got := fsetting.get(mustLoad(t, nil, map[string]string{env: ""})); got != "" {
				t.Errorf("empty env: %s = %q, want empty", name, got)
			}
			cfgFile := writeConfig(t, key+": "+strconv.Quote(fixture("load-"+name))+"\n")
			if got := fsetting.get(mustLoad(t, []string{"--config", cfgFile, "--" + name + "="}, nil)); got != "" {
				t.Errorf("empty flag over file: %s = %q, want empty", name, got)
			}
			if got := fsetting.get(mustLoad(t, []string{"--config", writeConfig(t, key+": \"\"\n")}, nil)); got != "" {
				t.Errorf("empty in file: %s = %q, want empty", name, got)
			}
		})
	}
}

// TestCheck covers the rules between settings, applied once every layer
// has been resolved.
func TestCheck(t *testing.T) {
	password, token, ca := fixture("check-password"), fixture("check-token"), fixture("check-ca")
	const insecure = "otlp-insecure=on sends in plaintext: it cannot use otlp-ca-file or otlp-bearer-token-file"
	for _, tc := range []struct {
		name string
		args []string
		vars map[string]string
		yaml string
		want string
	}{
		{name: "mimir username without password", args: []string{"--mimir-username=u"},
			want: "mimir-username needs mimir-password-file"},
		{name: "mimir username with only a token", args: []string{"--mimir-username=u", "--mimir-bearer-token-file=" + token},
			want: "mimir-username needs mimir-password-file"},
		{name: "mimir password without username", args: []string{"--mimir-password-file=" + password},
			want: "mimir-password-file needs mimir-username"},
		{name: "mimir basic auth and token", args: []string{"--mimir-username=u", "--mimir-password-file=" + password, "--mimir-bearer-token-file=" + token},
			want: "mimir: basic auth and a bearer token are exclusive"},
		{name: "loki username without password", vars: map[string]string{"STRATA_LOKI_USERNAME": "u"},
			want: "loki-username needs loki-password-file"},
		{name: "loki password without username", vars: map[string]string{"STRATA_LOKI_PASSWORD_FILE": password},
			want: "loki-password-file needs loki-username"},
		{name: "loki basic auth and token",
			yaml: "loki_username: u\nloki_password_file: " + strconv.Quote(password) + "\nloki_bearer_token_file: " + strconv.Quote(token) + "\n",
			want: "loki: basic auth and a bearer token are exclusive"},
		{name: "otlp insecure with ca", args: []string{"--otlp-insecure=on", "--otlp-ca-file=" + ca},
			want: insecure},
		{name: "otlp insecure with token", args: []string{"--otlp-insecure=on", "--otlp-bearer-token-file=" + token},
			want: insecure},
		{name: "otlp insecure with both", vars: map[string]string{"STRATA_OTLP_INSECURE": "on", "STRATA_OTLP_CA_FILE": ca, "STRATA_OTLP_BEARER_TOKEN_FILE": token},
			want: insecure},
		// The rules see the result of all layers, not each layer alone.
		{name: "username from file, password cleared by flag",
			yaml: "mimir_username: u\nmimir_password_file: " + strconv.Quote(password) + "\n",
			args: []string{"--mimir-password-file="},
			want: "mimir-username needs mimir-password-file"},
		{name: "basic auth from file, token from env",
			yaml: "mimir_username: u\nmimir_password_file: " + strconv.Quote(password) + "\n",
			vars: map[string]string{"STRATA_MIMIR_BEARER_TOKEN_FILE": token},
			want: "mimir: basic auth and a bearer token are exclusive"},
		{name: "ca from file, insecure from flag",
			yaml: "otlp_ca_file: " + strconv.Quote(ca) + "\n",
			args: []string{"--otlp-insecure=on"},
			want: insecure},
		// Mimir is checked before Loki, Loki before OTLP.
		{name: "mimir reported first", args: []string{"--loki-username=u", "--mimir-password-file=" + password, "--otlp-insecure=on", "--otlp-ca-file=" + ca},
			want: "mimir-password-file needs mimir-username"},
		{name: "loki before otlp", args: []string{"--loki-username=u", "--otlp-insecure=on", "--otlp-ca-file=" + ca},
			want: "loki-username needs loki-password-file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.yaml != "" {
				args = append([]string{"--config", writeConfig(t, tc.yaml)}, args...)
			}
			loadUsageError(t, args, tc.vars, tc.want)
		})
	}
}

func TestCheckAllows(t *testing.T) {
	password, token, ca := fixture("allow-password"), fixture("allow-token"), fixture("allow-ca")
	for _, tc := range []struct {
		name string
		args []string
		want func(*Config)
		yaml string
	}{
		{"mimir basic auth with ca", []string{"--mimir-username=u", "--mimir-password-file=" + password, "--mimir-ca-file=" + ca},
			func(c *Config) { c.MimirUsername, c.MimirPasswordFile, c.MimirCAFile = "u", password, ca }, ""},
		{"mimir token", []string{"--mimir-bearer-token-file=" + token},
			func(c *Config) { c.MimirBearerTokenFile = token }, ""},
		{"loki basic auth", []string{"--loki-username=u", "--loki-password-file=" + password},
			func(c *Config) { c.LokiUsername, c.LokiPasswordFile = "u", password }, ""},
		{"loki token with ca", []string{"--loki-bearer-token-file=" + token, "--loki-ca-file=" + ca},
			func(c *Config) { c.LokiBearerTokenFile, c.LokiCAFile = token, ca }, ""},
		{"otlp tls with token and ca", []string{"--otlp-insecure=off", "--otlp-bearer-token-file=" + token, "--otlp-ca-file=" + ca},
			func(c *Config) { c.OTLPBearerTokenFile, c.OTLPCAFile = token, ca }, ""},
		{"otlp insecure with tenant", []string{"--otlp-insecure=on", "--otlp-tenant=t"},
			func(c *Config) { c.OTLPInsecure, c.OTLPTenant = "on", "t" }, ""},
		{"insecure from file overridden", []string{"--otlp-insecure=off", "--otlp-ca-file=" + ca},
			func(c *Config) { c.OTLPCAFile = ca }, "otlp_insecure: on\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			args := tc.args
			if tc.yaml != "" {
				args = append([]string{"--config", writeConfig(t, tc.yaml)}, args...)
			}
			want := Default()
			tc.want(&want)
			if got := mustLoad(t, args, nil); !reflect.DeepEqual(got, want) {
				t.Errorf("Load =\n %+v\nwant\n %+v", got, want)
			}
		})
	}
}

// check also reports a file that has gone since it was parsed.
func TestCheckDirect(t *testing.T) {
	if err := Default().check(); err != nil {
		t.Errorf("Default().check() = %v, want nil", err)
	}
	missing := missingFile(t, "gone")
	for _, tc := range []struct {
		name string
		cfg  func(*Config)
		want string
	}{
		{"mimir ca gone", func(c *Config) { c.MimirCAFile = missing }, "mimir-ca-file: stat " + missing + ": no such file or directory"},
		{"loki token gone", func(c *Config) { c.LokiBearerTokenFile = missing }, "loki-bearer-token-file: stat " + missing + ": no such file or directory"},
		{"otlp ca gone", func(c *Config) { c.OTLPCAFile = missing }, "otlp-ca-file: stat " + missing + ": no such file or directory"},
		{"otlp token gone", func(c *Config) { c.OTLPBearerTokenFile = missing }, "otlp-bearer-token-file: stat " + missing + ": no such file or directory"},
		{"mimir password gone", func(c *Config) { c.MimirUsername, c.MimirPasswordFile = "u", missing }, "mimir-password-file: stat " + missing + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Default()
			tc.cfg(&c)
			err := c.check()
			if err == nil || err.Error() != tc.want {
				t.Errorf("check() = %v, want %q", err, tc.want)
			}
			if !errors.Is(err, fs.ErrNotExist) {
				t.Errorf("check() error %v does not wrap fs.ErrNotExist", err)
			}
		})
	}
}

// TestFileExporterSettings loads files naming every exporter key; the two
// variants flip the settings that exclude each other.
func TestFileExporterSettings(t *testing.T) {
	f := func(name string) string { return fixture("exporter-" + name) }
	for _, tc := range []struct {
		name string
		yaml string
		want Config
	}{
		{
			name: "mimir basic auth, loki and otlp tokens",
			yaml: `
node: node-a
mimir_url: https://mimir.example/api/v1/push
mimir_tenant: mt
mimir_username: mu
mimir_password_file: ` + strconv.Quote(f("mimir-password")) + `
mimir_bearer_token_file: ""
mimir_ca_file: ` + strconv.Quote(f("mimir-ca")) + `
mimir_interval: 1m30s
mimir_queue: 12345
loki_url: http://loki:3100/loki/api/v1/push
loki_tenant: lt
loki_username: ""
loki_password_file: ""
loki_bearer_token_file: ` + strconv.Quote(f("loki-token")) + `
loki_ca_file: ` + strconv.Quote(f("loki-ca")) + `
loki_queue: 54321
loki_rate: 3
otlp_insecure: off
otlp_tenant: ot
otlp_bearer_token_file: ` + strconv.Quote(f("otlp-token")) + `
otlp_ca_file: ` + strconv.Quote(f("otlp-ca")) + `
otlp_queue: 999
`,
			want: func() Config {
				c := Default()
				c.Node = "node-a"
				c.MimirURL, c.MimirTenant = "https://mimir.example/api/v1/push", "mt"
				c.MimirUsername, c.MimirPasswordFile, c.MimirCAFile = "mu", f("mimir-password"), f("mimir-ca")
				c.MimirInterval, c.MimirQueue = 90*time.Second, 12345
				c.LokiURL, c.LokiTenant = "http://loki:3100/loki/api/v1/push", "lt"
				c.LokiBearerTokenFile, c.LokiCAFile = f("loki-token"), f("loki-ca")
				c.LokiQueue, c.LokiRate = 54321, 3
				c.OTLPTenant, c.OTLPBearerTokenFile, c.OTLPCAFile, c.OTLPQueue = "ot", f("otlp-token"), f("otlp-ca"), 999
				return c
			}(),
		},
		{
			name: "mimir token, loki basic auth, otlp insecure",
			yaml: `
node: node-b
mimir_url: http://10.0.0.1:9009/api/v1/push
mimir_tenant: mt2
mimir_username: ""
mimir_password_file: ""
mimir_bearer_token_file: ` + strconv.Quote(f("mimir-token")) + `
mimir_ca_file: ""
mimir_interval: 5s
mimir_queue: 1
loki_url: https://loki.example/loki/api/v1/push
loki_tenant: lt2
loki_username: lu
loki_password_file: ` + strconv.Quote(f("loki-password")) + `
loki_bearer_token_file: ""
loki_ca_file: ""
loki_queue: 2
loki_rate: 4
otlp_insecure: on
otlp_tenant: ot2
otlp_bearer_token_file: ""
otlp_ca_file: ""
otlp_queue: 5
`,
			want: func() Config {
				c := Default()
				c.Node = "node-b"
				c.MimirURL, c.MimirTenant, c.MimirBearerTokenFile = "http://10.0.0.1:9009/api/v1/push", "mt2", f("mimir-token")
				c.MimirInterval, c.MimirQueue = 5*time.Second, 1
				c.LokiURL, c.LokiTenant = "https://loki.example/loki/api/v1/push", "lt2"
				c.LokiUsername, c.LokiPasswordFile = "lu", f("loki-password")
				c.LokiQueue, c.LokiRate = 2, 4
				c.OTLPInsecure, c.OTLPTenant, c.OTLPQueue = "on", "ot2", 5
				return c
			}(),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Every exporter key appears in the file.
			for _, st := range settings {
				if key := strings.ReplaceAll(st.name, "-", "_"); strings.HasPrefix(key, "mimir_") || strings.HasPrefix(key, "loki_") || strings.HasPrefix(key, "otlp_") || key == "node" {
					if key != "otlp_endpoint" && !strings.Contains(tc.yaml, "\n"+key+": ") {
						t.Errorf("test file lacks %s", key)
					}
				}
			}
			got := mustLoad(t, []string{"--config", writeConfig(t, tc.yaml)}, nil)
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Load =\n %+v\nwant\n %+v", got, tc.want)
			}
		})
	}
}

func TestPushURLRejectsCredentialsAndEmptyHosts(t *testing.T) {
	for v, want := range map[string]string{
		"http://user:secret@mimir/api/v1/push": "must not carry credentials: use the -username and -password-file settings",
		"http://:3100/loki/api/v1/push":        `must be an http:// or https:// URL with a host, not "http://:3100/loki/api/v1/push"`,
	} {
		var u pushURL
		if err := u.Set(v); err == nil || err.Error() != want {
			t.Errorf("Set(%q) = %v, want %q", v, err, want)
		}
	}
}

func TestFileRejectsDirectories(t *testing.T) {
	dir := t.TempDir()
	var f file
	if err := f.Set(dir); err == nil || err.Error() != fmt.Sprintf("%q is not a file", dir) {
		t.Fatalf("Set(dir) = %v", err)
	}
}

func TestCIDRNames(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want CIDRNames
		err  string
	}{
		{in: "", want: nil},
		{in: " , ", want: nil},
		{in: "10.250.9.0/24=partner-vpn", want: CIDRNames{"10.250.9.0/24": "partner-vpn"}},
		{in: "10.0.0.0/8=corp,10.250.9.0/24=partner-vpn", want: CIDRNames{"10.0.0.0/8": "corp", "10.250.9.0/24": "partner-vpn"}},
		{in: "2001:DB8::/32=lab", want: CIDRNames{"2001:db8::/32": "lab"}},
		{in: "192.0.2.7/32=one-host", want: CIDRNames{"192.0.2.7/32": "one-host"}},
		{in: "10.250.9.1/24=x", err: "10.250.9.1/24 has host bits set: write 10.250.9.0/24"},
		{in: "10.250.9.0=x", err: `"10.250.9.0" is not a CIDR like 10.250.9.0/24`},
		{in: "partner-vpn", err: `want CIDR=NAME (names cannot hold ',' or '='), not "partner-vpn"`},
		{in: "10.250.9.0/24=", err: `name of 10.250.9.0/24 must be a word without spaces or quotes (and not ~other), not ""`},
		{in: "10.250.9.0/24=a b", err: `not "a b"`},
		{in: "10.250.9.0/24=~other", err: `not "~other"`},
		{in: "10.250.9.0/24=a,10.250.9.0/24=b", err: "10.250.9.0/24 is named twice"},
	} {
		c := CIDRNames{"1.0.0.0/8": "before"}
		err := c.Set(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("Set(%q) = %v, want error %q", tc.in, err, tc.err)
			}
			if !reflect.DeepEqual(c, CIDRNames{"1.0.0.0/8": "before"}) {
				t.Errorf("failed Set(%q) changed the value to %v", tc.in, c)
			}
			continue
		}
		if err != nil || !reflect.DeepEqual(c, tc.want) {
			t.Errorf("Set(%q) = %v, %v; want %v", tc.in, c, err, tc.want)
		}
	}
	c := CIDRNames{"10.250.9.0/24": "partner-vpn", "10.0.0.0/8": "corp"}
	if got := c.String(); got != "10.0.0.0/8=corp,10.250.9.0/24=partner-vpn" {
		t.Errorf("String() = %q", got)
	}
	if p := c.Prefixes(); len(p) != 2 || p[netip.MustParsePrefix("10.250.9.0/24")] != "partner-vpn" {
		t.Errorf("Prefixes() = %v", p)
	}
}

// The file's map goes through the same checks as the flag.
func TestCIDRNamesFile(t *testing.T) {
	for _, tc := range []struct{ yaml, err string }{
		{"cidr_names: {\"10.250.9.1/24\": x}\n", "cidr_names: 10.250.9.1/24 has host bits set: write 10.250.9.0/24"},
		{"cidr_names: {\"nonsense\": x}\n", `cidr_names: "nonsense" is not a CIDR`},
		{"cidr_names: {\"10.250.9.0/24\": \"\"}\n", "cidr_names: name of 10.250.9.0/24"},
		{"cidr_names: [10.250.9.0/24]\n", "cannot unmarshal"},
	} {
		_, _, err := load(t, []string{"--config", writeConfig(t, tc.yaml)}, nil)
		if err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: %v, want %q", tc.yaml, err, tc.err)
		}
	}
}

func TestDNSSettingErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--dns=maybe"}, `must be on or off, not "maybe"`},
		{[]string{"--dns-timeout=500ms"}, "must be at least 1s, not 500ms"},
		{[]string{"--dns-timeout=soon"}, `must be a duration like 10s, not "soon"`},
		{[]string{"--cidr-names=10.250.9.1/24=x"}, "has host bits set"},
	} {
		_, _, err := load(t, tc.args, nil)
		var ue UsageError
		if !errors.As(err, &ue) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want a usage error with %q", tc.args, err, tc.want)
		}
	}
}

// BudgetLabels is kept by hand beside the budgets it names: every label
// agent/flow budgets, and DNS's qname, and nothing else.
func TestBudgetLabelsAreFlowsAndQname(t *testing.T) {
	var want []string
	for label := range flow.DefaultBudgets().Labels {
		want = append(want, label)
	}
	want = append(want, "qname")
	got := slices.Clone(BudgetLabels)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("BudgetLabels %v, want flow's budgeted labels and qname: %v", got, want)
	}
}

func TestBackendCheck(t *testing.T) {
	dir := t.TempDir()
	pw := filepath.Join(dir, "password")
	token := filepath.Join(dir, "token")
	ca := filepath.Join(dir, "ca.pem")
	for _, f := range []string{pw, token, ca} {
		if err := os.WriteFile(f, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	missing := filepath.Join(dir, "missing")
	for _, tc := range []struct {
		name string
		b    Backend
		want string // "" for no error
	}{
		{"nothing", Backend{}, ""},
		{"tenant only", Backend{Tenant: "team-a"}, ""},
		{"basic auth", Backend{Username: "u", PasswordFile: pw}, ""},
		{"bearer and CA", Backend{BearerTokenFile: token, CAFile: ca}, ""},
		{"username without password", Backend{Username: "u"}, "mimir-username needs mimir-password-file"},
		{"password without username", Backend{PasswordFile: pw}, "mimir-password-file needs mimir-username"},
		{"basic and bearer", Backend{Username: "u", PasswordFile: pw, BearerTokenFile: token}, "mimir: basic auth and a bearer token are exclusive"},
		{"missing password file", Backend{Username: "u", PasswordFile: missing}, "mimir-password-file: stat " + missing + ": no such file or directory"},
		{"missing token file", Backend{BearerTokenFile: missing}, "mimir-bearer-token-file: stat " + missing + ": no such file or directory"},
		{"missing CA file", Backend{CAFile: missing}, "mimir-ca-file: stat " + missing + ": no such file or directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.b.check("mimir")
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("Check = %v, want nil", err)
			case tc.want != "" && err == nil:
				t.Errorf("Check = nil, want %q", tc.want)
			case tc.want != "" && err.Error() != tc.want:
				t.Errorf("Check = %q, want %q", err.Error(), tc.want)
			}
		})
	}
	// The file errors wrap the os error.
	err := Backend{CAFile: missing}.check("loki")
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Check(missing CA) = %v, want it to wrap os.ErrNotExist", err)
	}
}
