package dashboards

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// promtool runs Prometheus's own checker. Without it the test skips, and
// with CI=true it fails: CI installs Debian's prometheus package.
func promtool(t *testing.T, args ...string) string {
	t.Helper()
	bin, err := exec.LookPath("promtool")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("promtool not found (Debian package prometheus): make deps installs it")
		}
		t.Skip("promtool not found (Debian package prometheus)")
	}
	out, err := exec.Command(bin, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("promtool %v: %v\n%s", args, err, out)
	}
	return string(out)
}

func TestRulesPassPromtoolCheck(t *testing.T) {
	files, _ := filepath.Glob("rules/*.yaml")
	if len(files) != 2 {
		t.Fatalf("rule files %v, want recording.yaml and alerts.yaml", files)
	}
	promtool(t, append([]string{"check", "rules"}, files...)...)
}

// Every alert fires on its failing case and stays quiet on the healthy one
// (rules/tests/*.yaml).
func TestRulesPassPromtoolTests(t *testing.T) {
	files, _ := filepath.Glob("rules/tests/*_test.yaml")
	if len(files) != 3 {
		t.Fatalf("rule tests %v, want 3", files)
	}
	promtool(t, append([]string{"test", "rules"}, files...)...)
}
