package agent

import (
	"os/exec"
	"strings"
	"testing"
)

// Data flows one way: aggregation, and the configuration every stage
// reads, import no exporter. What aggregation hands on goes through
// agent/emit, which both sides import.
func TestAggregationImportsNoExporter(t *testing.T) {
	const module = "github.com/stratanet/strata/"
	pkgs := []string{"agent/flow", "agent/httpflow", "agent/dnsflow", "agent/config", "agent/emit"}
	for _, p := range pkgs {
		out, err := exec.Command("go", "list", "-deps", "-f", "{{.ImportPath}}", module+p).Output()
		if err != nil {
			t.Fatalf("go list %s: %v", p, err)
		}
		deps := strings.Fields(string(out))
		if len(deps) == 0 || deps[len(deps)-1] != module+p { // the package itself comes last
			t.Fatalf("go list %s: unexpected listing:\n%s", p, out)
		}
		for _, d := range deps {
			if strings.HasPrefix(d, module+"exporters/") {
				t.Errorf("%s imports %s", p, d)
			}
		}
	}
}
