package harness

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// ToolsDir is where make tools puts the backends built from Go modules.
func ToolsDir() string {
	if d := os.Getenv("STRATA_TOOLS_DIR"); d != "" {
		return d
	}
	return "/var/cache/strata/bin"
}

// Jaeger is a Jaeger v2 all-in-one on loopback: OTLP gRPC in, traces out
// through its query API, in memory.
type Jaeger struct {
	OTLP   string // host:port
	query  string
	health string
	t      *testing.T
	binary string
	cfg    string
	cmd    *exec.Cmd
	log    *lockedBuffer
}

// StartJaeger runs Jaeger until the test ends.
func StartJaeger(t *testing.T) *Jaeger {
	t.Helper()
	j := NewJaeger(t)
	j.Start()
	return j
}

// NewJaeger prepares Jaeger's ports without starting it (in memory: a
// restart forgets what it stored).
func NewJaeger(t *testing.T) *Jaeger {
	t.Helper()
	binary := tool(t, "jaeger")
	j := &Jaeger{t: t, binary: binary, OTLP: FreeAddr(t), query: FreeAddr(t)}
	health, grpcQuery, otlpHTTP := FreeAddr(t), FreeAddr(t), FreeAddr(t)
	j.health = health
	j.cfg = filepath.Join(t.TempDir(), "jaeger.yaml")
	os.WriteFile(j.cfg, []byte(fmt.Sprintf(`
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces: {receivers: [otlp], processors: [batch], exporters: [jaeger_storage_exporter]}
  telemetry: {metrics: {level: none}, logs: {level: warn}}
extensions:
  jaeger_query:
    storage: {traces: mem}
    http: {endpoint: %q}
    grpc: {endpoint: %q}
  jaeger_storage:
    backends: {mem: {memory: {max_traces: 10000}}}
  healthcheckv2:
    use_v2: true
    http: {endpoint: %q}
receivers:
  otlp:
    protocols:
      grpc: {endpoint: %q}
      http: {endpoint: %q}
processors:
  batch: {timeout: 100ms}
exporters:
  jaeger_storage_exporter: {trace_storage: mem}
`, j.query, grpcQuery, health, j.OTLP, otlpHTTP)), 0o644)
	t.Cleanup(j.Stop)
	return j
}

// Start runs Jaeger and waits until it is healthy.
func (j *Jaeger) Start() {
	t := j.t
	t.Helper()
	j.log = &lockedBuffer{}
	j.cmd = exec.Command(j.binary, "--config", j.cfg)
	j.cmd.Stdout, j.cmd.Stderr = j.log, j.log
	if err := j.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + j.health + "/status")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("jaeger not ready in 30s:\n%s", j.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop kills Jaeger.
func (j *Jaeger) Stop() {
	if j.cmd == nil {
		return
	}
	j.cmd.Process.Kill()
	j.cmd.Wait()
	if j.t.Failed() {
		j.t.Logf("jaeger log:\n%s", j.log.String())
	}
	j.cmd = nil
}

// Span is what the tests check of a stored span.
type Span struct {
	TraceID, SpanID, Parent string
	Name, Service, Kind     string
	Tags                    map[string]any
}

// Trace fetches a trace by ID; nil while Jaeger does not know it.
func (j *Jaeger) Trace(t *testing.T, traceID string) []Span {
	t.Helper()
	resp, err := http.Get("http://" + j.query + "/api/traces/" + traceID)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusNotFound {
		return nil
	}
	var body struct {
		Data []struct {
			Spans []struct {
				TraceID       string `json:"traceID"`
				SpanID        string `json:"spanID"`
				OperationName string `json:"operationName"`
				ProcessID     string `json:"processID"`
				References    []struct {
					RefType string `json:"refType"`
					SpanID  string `json:"spanID"`
				} `json:"references"`
				Tags []struct {
					Key   string `json:"key"`
					Value any    `json:"value"`
				} `json:"tags"`
			} `json:"spans"`
			Processes map[string]struct {
				ServiceName string `json:"serviceName"`
			} `json:"processes"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("jaeger answer: %v", err)
	}
	var out []Span
	for _, tr := range body.Data {
		for _, s := range tr.Spans {
			sp := Span{TraceID: s.TraceID, SpanID: s.SpanID, Name: s.OperationName,
				Service: tr.Processes[s.ProcessID].ServiceName, Tags: map[string]any{}}
			for _, r := range s.References {
				if r.RefType == "CHILD_OF" {
					sp.Parent = r.SpanID
				}
			}
			for _, tag := range s.Tags {
				sp.Tags[tag.Key] = tag.Value
			}
			if k, ok := sp.Tags["span.kind"].(string); ok {
				sp.Kind = k
			}
			out = append(out, sp)
		}
	}
	return out
}
