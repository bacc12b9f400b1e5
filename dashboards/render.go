package dashboards

import (
	"encoding/json"
	"fmt"
	"sort"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// All are Strata's dashboards, by file name under json/.
func All() map[string]*dashboard.DashboardBuilder {
	return map[string]*dashboard.DashboardBuilder{
		"strata-overview.json": Overview(),
		"strata-workload.json": Workload(),
		"strata-external.json": External(),
		"strata-dns.json":      DNS(),
		"strata-agent.json":    Agent(),
	}
}

// Build builds every dashboard, by file name.
func Build() (map[string]dashboard.Dashboard, error) {
	out := map[string]dashboard.Dashboard{}
	for name, b := range All() {
		d, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", name, err)
		}
		out[name] = d
	}
	return out, nil
}

// Render is a dashboard as the JSON Grafana imports: indented, keys in a
// fixed order, ending in a newline, so the committed files diff cleanly.
func Render(d dashboard.Dashboard) ([]byte, error) {
	b, err := json.MarshalIndent(d, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Names are the dashboards' file names, sorted.
func Names() []string {
	var names []string
	for n := range All() {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
