package harness

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"path/filepath"
	"regexp"
	"testing"
)

// VictoriaLogs is the logs backend (Loki's role): it takes the Loki push
// API at /insert/loki/api/v1/push and answers LogsQL queries.
type VictoriaLogs struct {
	*Backend
	// Tenant is the X-Scope-OrgID the agent sends. VictoriaLogs takes only
	// numeric ones ("42") and refuses others with 400.
	Tenant string
}

// StartVictoriaLogs runs VictoriaLogs until the test ends.
func StartVictoriaLogs(t *testing.T) *VictoriaLogs {
	v := NewVictoriaLogs(t)
	v.Start()
	return v
}

// NewVictoriaLogs prepares its port and data without starting it; data
// survives a Stop and Start.
func NewVictoriaLogs(t *testing.T) *VictoriaLogs {
	binary := tool(t, "victoria-logs")
	addr := FreeAddr(t)
	b := newBackend(t, "victoria-logs", "/health", binary, "-storageDataPath="+filepath.Join(t.TempDir(), "data"),
		"-httpListenAddr="+addr, "-loggerLevel=WARN")
	b.Addr = addr
	return &VictoriaLogs{Backend: b, Tenant: "42"}
}

// PushURL is the Loki-compatible push endpoint.
func (v *VictoriaLogs) PushURL() string { return "http://" + v.Addr + "/insert/loki/api/v1/push" }

// LogLine is one stored log line: its stream labels, its text, and every
// field the query made (unpack_logfmt's among them).
type LogLine struct {
	Stream map[string]string
	Line   string
	Fields map[string]string
}

var streamLabel = regexp.MustCompile(`(\w+)="((?:[^"\\]|\\.)*)"`)

// Logs runs a LogsQL query (e.g. `{job="strata",event="connect_failed"} |
// unpack_logfmt | filter destination_port:=18090`) over the last hour as
// the VictoriaLogs tenant, oldest line first.
func (v *VictoriaLogs) Logs(logsql string) ([]LogLine, error) {
	var body []byte
	err := v.call("POST", "/select/logsql/query", url.Values{"query": {"_time:1h " + logsql + " | sort by (_time)"}},
		http.Header{"Accountid": {v.Tenant}}, &body)
	if err != nil {
		return nil, err
	}
	var out []LogLine
	for _, line := range bytes.Split(bytes.TrimSpace(body), []byte("\n")) {
		if len(line) == 0 {
			continue
		}
		fields := map[string]string{}
		if err := json.Unmarshal(line, &fields); err != nil {
			return nil, err
		}
		stream := map[string]string{}
		for _, m := range streamLabel.FindAllStringSubmatch(fields["_stream"], -1) {
			stream[m[1]] = m[2]
		}
		out = append(out, LogLine{Stream: stream, Line: fields["_msg"], Fields: fields})
	}
	return out, nil
}
