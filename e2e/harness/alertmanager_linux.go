package harness

import (
	"os"
	"path/filepath"
	"testing"
)

// Alertmanager is Debian's Alertmanager 0.25 on loopback, receiving what a
// test's Prometheus fires. It routes everything to a receiver that sends
// nothing: tests read the alerts back from its API.
type Alertmanager struct{ *Backend }

// StartAlertmanager runs Alertmanager until the test ends.
func StartAlertmanager(t *testing.T) *Alertmanager {
	binary := debian(t, "prometheus-alertmanager", "prometheus-alertmanager")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route: {receiver: tests, group_wait: 0s, group_interval: 1s}\nreceivers: [{name: tests}]\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := FreeAddr(t)
	b := newBackend(t, "alertmanager", "/-/ready", binary, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr, "--cluster.listen-address=", "--log.level=warn")
	b.Addr = addr
	a := &Alertmanager{b}
	a.Start()
	return a
}

// Alert is one alert Alertmanager holds.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	Status      struct {
		State string `json:"state"` // active, suppressed, unprocessed
	} `json:"status"`
}

// Alerts lists the alerts Alertmanager holds now.
func (a *Alertmanager) Alerts() ([]Alert, error) {
	var out []Alert
	err := a.call("GET", "/api/v2/alerts", nil, nil, &out)
	return out, err
}
