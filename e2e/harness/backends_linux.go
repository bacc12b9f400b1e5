package harness

import (
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Backend is a real server the agent pushes to (Mimir, Loki), run from the
// binaries `make tools` builds. It can be killed and started again on the
// same ports and data, which is what the outage tests do.
type Backend struct {
	t      *testing.T
	name   string
	args   []string
	Addr   string // host:port of its HTTP API
	Tenant string // every push and query carries it
	cmd    *exec.Cmd
	log    *lockedBuffer
}

func tool(t *testing.T, name string) string {
	binary := filepath.Join(ToolsDir(), name)
	if _, err := os.Stat(binary); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s not built (%v): make tools", name, err)
		}
		t.Skipf("%s not built (%v): make tools", name, err)
	}
	return binary
}

// StartMimir runs Mimir (monolithic, filesystem storage, multi-tenant,
// exemplars on) on loopback until the test ends.
func StartMimir(t *testing.T) *Backend {
	b := NewMimir(t)
	b.Start()
	return b
}

// NewMimir prepares Mimir's ports and data without starting it.
func NewMimir(t *testing.T) *Backend {
	binary := tool(t, "mimir")
	dir := t.TempDir()
	b := &Backend{t: t, name: "mimir", Addr: FreeAddr(t), Tenant: "team-a"}
	grpc := FreeAddr(t)
	cfg := fmt.Sprintf(mimirConfig, port(b.Addr), port(grpc), dir)
	path := filepath.Join(dir, "mimir.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	b.args = []string{binary, "-config.file", path, "-target", "all"}
	t.Cleanup(b.Stop)
	return b
}

// StartLoki runs Loki (single binary, filesystem storage, multi-tenant) on
// loopback until the test ends.
func StartLoki(t *testing.T) *Backend {
	b := NewLoki(t)
	b.Start()
	return b
}

// NewLoki prepares Loki's ports and data without starting it.
func NewLoki(t *testing.T) *Backend {
	binary := tool(t, "loki")
	dir := t.TempDir()
	b := &Backend{t: t, name: "loki", Addr: FreeAddr(t), Tenant: "team-a"}
	grpc := FreeAddr(t)
	cfg := fmt.Sprintf(lokiConfig, port(b.Addr), port(grpc), dir)
	path := filepath.Join(dir, "loki.yaml")
	if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	b.args = []string{binary, "-config.file", path}
	t.Cleanup(b.Stop)
	return b
}

func port(addr string) string { return addr[strings.LastIndexByte(addr, ':')+1:] }

// Start runs the backend and waits until it says it is ready.
func (b *Backend) Start() {
	b.t.Helper()
	b.log = &lockedBuffer{}
	b.cmd = exec.Command(b.args[0], b.args[1:]...)
	b.cmd.Stdout, b.cmd.Stderr = b.log, b.log
	if err := b.cmd.Start(); err != nil {
		b.t.Fatal(err)
	}
	deadline := time.Now().Add(90 * time.Second)
	for {
		resp, err := http.Get("http://" + b.Addr + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Stop()
			b.t.Fatalf("%s not ready within 90s:\n%s", b.name, b.log.String())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// Stop kills the backend (as an outage would) and waits for it to exit.
func (b *Backend) Stop() {
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Kill()
	b.cmd.Wait()
	if b.t.Failed() {
		b.t.Logf("%s log:\n%s", b.name, b.log.String())
	}
	b.cmd = nil
}

// get queries the backend's HTTP API as its tenant and decodes the JSON.
func (b *Backend) get(path string, params url.Values, out any) error {
	req, err := http.NewRequest("GET", "http://"+b.Addr+path+"?"+params.Encode(), nil)
	if err != nil {
		return err
	}
	req.Header.Set("X-Scope-OrgID", b.Tenant)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %s: %s", b.name, path, resp.Status, body)
	}
	return json.Unmarshal(body, out)
}

// Sample is one series of an instant query.
type Sample struct {
	Labels map[string]string
	Value  string
}

// Query runs a PromQL instant query against Mimir.
func (b *Backend) Query(promql string) ([]Sample, error) {
	var r struct {
		Data struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := b.get("/prometheus/api/v1/query", url.Values{"query": {promql}}, &r); err != nil {
		return nil, err
	}
	var out []Sample
	for _, s := range r.Data.Result {
		v, _ := s.Value[1].(string)
		out = append(out, Sample{Labels: s.Metric, Value: v})
	}
	return out, nil
}

// Exemplar is one exemplar Mimir stored.
type Exemplar struct {
	Series map[string]string
	Labels map[string]string
	Value  string
}

// Exemplars queries Mimir's exemplars for a selector over the last hour.
func (b *Backend) Exemplars(selector string) ([]Exemplar, error) {
	var r struct {
		Data []struct {
			Series    map[string]string `json:"seriesLabels"`
			Exemplars []struct {
				Labels map[string]string `json:"labels"`
				Value  string            `json:"value"`
			} `json:"exemplars"`
		} `json:"data"`
	}
	now := time.Now()
	err := b.get("/prometheus/api/v1/query_exemplars", url.Values{"query": {selector},
		"start": {fmt.Sprint(now.Add(-time.Hour).Unix())}, "end": {fmt.Sprint(now.Add(time.Minute).Unix())}}, &r)
	var out []Exemplar
	for _, s := range r.Data {
		for _, e := range s.Exemplars {
			out = append(out, Exemplar{Series: s.Series, Labels: e.Labels, Value: e.Value})
		}
	}
	return out, err
}

// LogLine is one stored log line and its stream.
type LogLine struct {
	Stream map[string]string
	Line   string
}

// Logs runs a LogQL query against Loki over the last hour, oldest first.
func (b *Backend) Logs(logql string) ([]LogLine, error) {
	var r struct {
		Data struct {
			Result []struct {
				Stream map[string]string `json:"stream"`
				Values [][2]string       `json:"values"`
			} `json:"result"`
		} `json:"data"`
	}
	now := time.Now()
	err := b.get("/loki/api/v1/query_range", url.Values{"query": {logql}, "direction": {"forward"}, "limit": {"5000"},
		"start": {fmt.Sprint(now.Add(-time.Hour).UnixNano())}, "end": {fmt.Sprint(now.Add(time.Minute).UnixNano())}}, &r)
	var out []LogLine
	for _, s := range r.Data.Result {
		for _, v := range s.Values {
			out = append(out, LogLine{Stream: s.Stream, Line: v[1]})
		}
	}
	return out, err
}

// Mimir in one process: filesystem storage, every ring in memory on
// loopback, tenants required, exemplars kept.
const mimirConfig = `
multitenancy_enabled: true
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %s
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: %s
  log_level: warn
common:
  storage:
    backend: filesystem
    filesystem:
      dir: %[3]s/data
limits:
  max_global_exemplars_per_user: 100000
  ingestion_rate: 1000000
  ingestion_burst_size: 10000000
blocks_storage:
  storage_prefix: blocks
  tsdb:
    dir: %[3]s/tsdb
  bucket_store:
    sync_dir: %[3]s/tsdb-sync
compactor:
  data_dir: %[3]s/compactor
  sharding_ring: {instance_addr: 127.0.0.1, kvstore: {store: inmemory}}
distributor:
  ring: {instance_addr: 127.0.0.1, kvstore: {store: inmemory}}
ingester:
  ring: {instance_addr: 127.0.0.1, kvstore: {store: inmemory}, replication_factor: 1, min_ready_duration: 0s, final_sleep: 0s}
store_gateway:
  sharding_ring: {instance_addr: 127.0.0.1, kvstore: {store: inmemory}, replication_factor: 1}
ruler:
  ring: {instance_addr: 127.0.0.1, kvstore: {store: inmemory}}
ruler_storage:
  storage_prefix: rules
alertmanager:
  sharding_ring: {instance_addr: 127.0.0.1, kvstore: {store: inmemory}, replication_factor: 1}
alertmanager_storage:
  storage_prefix: alertmanager
frontend:
  address: 127.0.0.1
querier:
  ring: {instance_addr: 127.0.0.1, kvstore: {store: inmemory}}
query_scheduler:
  ring: {instance_addr: 127.0.0.1, kvstore: {store: inmemory}}
overrides_exporter:
  ring: {instance_addr: 127.0.0.1, kvstore: {store: inmemory}}
`

// Loki in one process: filesystem storage, tenants required.
const lokiConfig = `
auth_enabled: true
server:
  http_listen_address: 127.0.0.1
  http_listen_port: %s
  grpc_listen_address: 127.0.0.1
  grpc_listen_port: %s
  log_level: warn
common:
  instance_addr: 127.0.0.1
  path_prefix: %[3]s/data
  storage:
    filesystem:
      chunks_directory: %[3]s/data/chunks
      rules_directory: %[3]s/data/rules
  replication_factor: 1
  ring:
    kvstore:
      store: inmemory
schema_config:
  configs:
    - from: 2020-10-24
      store: tsdb
      object_store: filesystem
      schema: v13
      index: {prefix: index_, period: 24h}
analytics:
  reporting_enabled: false
ingester:
  lifecycler:
    min_ready_duration: 0s
    final_sleep: 0s
`

// Tool is the path of a binary make tools built; missing fails in CI and
// skips elsewhere.
func Tool(t *testing.T, name string) string { return tool(t, name) }

// InsecureClient talks to the test cluster's self-signed API server.
func InsecureClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}
