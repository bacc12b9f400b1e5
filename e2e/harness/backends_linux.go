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
	"syscall"
	"testing"
	"time"
)

// Backend is a real server the agent pushes to or a test queries (Prometheus,
// VictoriaLogs, Alertmanager). It can be killed and started again on the
// same ports and data, which is what the outage tests do.
type Backend struct {
	t     *testing.T
	name  string
	args  []string
	ready string // a path that answers 200 once the server serves
	Addr  string // host:port of its HTTP API
	cmd   *exec.Cmd
	log   *lockedBuffer
}

func newBackend(t *testing.T, name, ready string, args ...string) *Backend {
	b := &Backend{t: t, name: name, ready: ready, args: args}
	t.Cleanup(b.Stop)
	return b
}

// tool is the path of a binary make tools built; missing fails in CI and
// skips elsewhere.
func tool(t *testing.T, name string) string {
	binary := filepath.Join(ToolsDir(), name)
	if _, err := os.Stat(binary); err != nil {
		missing(t, "%s not built (%v): make tools", name, err)
	}
	return binary
}

// debian is the path of a binary from a Debian package make deps installs.
func debian(t *testing.T, name, pkg string) string {
	binary, err := exec.LookPath(name)
	if err != nil {
		missing(t, "%s not found (%v): make deps installs Debian's %s", name, err, pkg)
	}
	return binary
}

func missing(t *testing.T, format string, args ...any) {
	t.Helper()
	if os.Getenv("CI") == "true" {
		t.Fatalf(format, args...)
	}
	t.Skipf(format, args...)
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
	deadline := time.Now().Add(60 * time.Second)
	for {
		resp, err := http.Get("http://" + b.Addr + b.ready)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if time.Now().After(deadline) {
			b.Stop()
			b.t.Fatalf("%s not ready within 60s:\n%s", b.name, b.log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop takes the backend away and waits for it to exit. It is asked to
// stop (SIGTERM), as in a rolling restart, so what it took is on disk when
// it comes back (VictoriaLogs keeps the last seconds in memory); to the
// agent it is the same outage as a crash: connections refused.
func (b *Backend) Stop() {
	if b.cmd == nil {
		return
	}
	b.cmd.Process.Signal(syscall.SIGTERM)
	exited := make(chan struct{})
	go func() { b.cmd.Wait(); close(exited) }()
	select {
	case <-exited:
	case <-time.After(10 * time.Second):
		b.cmd.Process.Kill()
		<-exited
	}
	if b.t.Failed() {
		b.t.Logf("%s log:\n%s", b.name, b.log.String())
	}
	b.cmd = nil
}

// call sends a request to the backend's HTTP API and decodes the JSON
// answer into out (raw body bytes into a *[]byte).
func (b *Backend) call(method, path string, params url.Values, header http.Header, out any) error {
	var req *http.Request
	var err error
	if method == "POST" {
		req, err = http.NewRequest(method, "http://"+b.Addr+path, strings.NewReader(params.Encode()))
		if err == nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
	} else {
		req, err = http.NewRequest(method, "http://"+b.Addr+path+"?"+params.Encode(), nil)
	}
	if err != nil {
		return err
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := (&http.Client{Timeout: 10 * time.Second}).Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return fmt.Errorf("%s %s: %s: %s", b.name, path, resp.Status, body)
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = body
		return nil
	}
	return json.Unmarshal(body, out)
}

// Tool is the path of a binary make tools built; missing fails in CI and
// skips elsewhere.
func Tool(t *testing.T, name string) string { return tool(t, name) }

// InsecureClient talks to the test cluster's self-signed API server.
func InsecureClient() *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}
