package config

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func load(t *testing.T, args []string, e map[string]string) (Config, error) {
	t.Helper()
	return Load(args, env(e), &bytes.Buffer{})
}

func writeFile(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "strata.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestDefaults(t *testing.T) {
	c, err := load(t, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	want := Default()
	if c.Kubernetes != "auto" || c.MetricsAddr != ":9810" || c.SweepInterval != 10*time.Second ||
		c.LogLevel != "info" || c.RingBuffer != 8<<20 || c.EventQueue != 65536 || c.MaxSeries != 20000 {
		t.Fatalf("defaults %+v", c)
	}
	if c.MaxSockets != want.MaxSockets || c.LabelBudgets != nil {
		t.Fatalf("defaults %+v", c)
	}
}

// Each source overrides the one before: defaults < file < environment < flags.
func TestPrecedence(t *testing.T) {
	file := writeFile(t, `
metrics_addr: 127.0.0.1:1111
sweep_interval: 5s
log_level: warn
kubernetes: "off"
ring_buffer_size: 4MiB
label_budgets:
  destination_workload: 50
`)
	c, err := load(t, []string{"--config", file}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsAddr != "127.0.0.1:1111" || c.SweepInterval != 5*time.Second || c.LogLevel != "warn" ||
		c.Kubernetes != "off" || c.RingBuffer != 4<<20 || c.LabelBudgets["destination_workload"] != 50 {
		t.Fatalf("from file: %+v", c)
	}

	e := map[string]string{"STRATA_CONFIG": file, "STRATA_METRICS_ADDR": "127.0.0.1:2222", "STRATA_SWEEP_INTERVAL": "7s"}
	c, err = load(t, nil, e)
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsAddr != "127.0.0.1:2222" || c.SweepInterval != 7*time.Second || c.LogLevel != "warn" {
		t.Fatalf("env over file: %+v", c)
	}

	c, err = load(t, []string{"--metrics-addr", "127.0.0.1:3333", "--log-level=debug"}, e)
	if err != nil {
		t.Fatal(err)
	}
	if c.MetricsAddr != "127.0.0.1:3333" || c.SweepInterval != 7*time.Second || c.LogLevel != "debug" {
		t.Fatalf("flags over env: %+v", c)
	}
}

// A flag left at its default does not undo the environment.
func TestUnsetFlagKeepsEnvironment(t *testing.T) {
	c, err := load(t, []string{"--log-level", "error"}, map[string]string{"STRATA_KUBERNETES": "off"})
	if err != nil || c.Kubernetes != "off" {
		t.Fatalf("%+v, %v", c, err)
	}
}

func TestBadInput(t *testing.T) {
	cases := []struct {
		name string
		args []string
		env  map[string]string
		file string
		want []string // all must appear in the message
	}{
		{"kubernetes", []string{"--kubernetes=maybe"}, nil, "", []string{"kubernetes", `"maybe"`}},
		{"addr without port", []string{"--metrics-addr=nohost"}, nil, "", []string{"metrics-addr", "HOST:PORT"}},
		{"addr port range", []string{"--metrics-addr=:99999"}, nil, "", []string{"metrics-addr", "99999"}},
		{"interval", []string{"--sweep-interval=abc"}, nil, "", []string{"sweep-interval", `"abc"`}},
		{"interval too short", []string{"--sweep-interval=500ms"}, nil, "", []string{"sweep-interval", "at least 1s"}},
		{"log level", []string{"--log-level=loud"}, nil, "", []string{"log-level", `"loud"`}},
		{"ring not power of two", []string{"--ring-buffer-size=3000"}, nil, "", []string{"ring-buffer-size", "power of two"}},
		{"ring too big", []string{"--ring-buffer-size=2GiB"}, nil, "", []string{"ring-buffer-size", "power of two"}},
		{"zero sockets", []string{"--max-sockets=0"}, nil, "", []string{"max-sockets", "positive"}},
		{"unknown flag", []string{"--bogus"}, nil, "", []string{"bogus"}},
		{"positional", []string{"run"}, nil, "", []string{`unexpected argument "run"`}},
		{"env", nil, map[string]string{"STRATA_SWEEP_INTERVAL": "x"}, "", []string{"STRATA_SWEEP_INTERVAL", `"x"`}},
		{"file unknown key", nil, nil, "metrics_adr: :1\n", []string{"metrics_adr"}},
		{"file bad value", nil, nil, "sweep_interval: 10ms\n", []string{"sweep_interval", "at least 1s"}},
		{"file zero budget", nil, nil, "label_budgets:\n  source_workload: 0\n", []string{"label_budgets.source_workload"}},
		{"missing file", []string{"--config", "/nonexistent/strata.yaml"}, nil, "", []string{"/nonexistent/strata.yaml"}},
		{"route pattern", []string{"--http-routes", "/ok/{id},users/{id}"}, nil, "", []string{"http-routes", "users/{id}"}},
		{"http", []string{"--http=yes"}, nil, "", []string{"http", `"yes"`}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := c.args
			if c.file != "" {
				args = append(args, "--config", writeFile(t, c.file))
			}
			_, err := load(t, args, c.env)
			var ue UsageError
			if !errors.As(err, &ue) {
				t.Fatalf("error %v (%T), want a UsageError", err, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}

func TestRoutePatterns(t *testing.T) {
	c, err := load(t, []string{"--http-routes", " /api/users/{user} , /files/{name}"}, nil)
	if err != nil || len(c.HTTPRoutes) != 2 || c.HTTPRoutes[0] != "/api/users/{user}" || c.HTTPRoutes[1] != "/files/{name}" {
		t.Fatalf("%q, %v", c.HTTPRoutes, err)
	}
	c, err = load(t, []string{"--config", writeFile(t, "http_routes: [\"/a/{x}\", /b]\n")}, nil)
	if err != nil || len(c.HTTPRoutes) != 2 || c.HTTPRoutes[1] != "/b" {
		t.Fatalf("from file: %q, %v", c.HTTPRoutes, err)
	}
}

func TestHelp(t *testing.T) {
	var out bytes.Buffer
	_, err := Load([]string{"--help"}, env(nil), &out)
	if !errors.Is(err, flag.ErrHelp) {
		t.Fatalf("err %v, want flag.ErrHelp", err)
	}
	for _, w := range []string{"STRATA_METRICS_ADDR", "-sweep-interval", "(default 10s)"} {
		if !strings.Contains(out.String(), w) {
			t.Errorf("usage lacks %q:\n%s", w, out.String())
		}
	}
}

func TestSizeSuffixes(t *testing.T) {
	for in, want := range map[string]Size{"4096": 4096, "512KiB": 512 << 10, "8MiB": 8 << 20, "1GiB": 1 << 30} {
		var s Size
		if err := s.Set(in); err != nil || s != want {
			t.Errorf("%s: %d, %v; want %d", in, s, err, want)
		}
	}
}
