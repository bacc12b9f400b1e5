package agent

import (
	"testing"

	"github.com/stratanet/strata/agent/config"
	"github.com/stratanet/strata/agent/httpflow"
)

// Each HTTP bound reaches the table it is meant for, and the defaults of
// the two agree.
func TestHTTPOptions(t *testing.T) {
	cfg := config.Default()
	if got, want := httpOptions(cfg), httpflow.DefaultOptions(); got != want {
		t.Errorf("defaults: config gives %+v, httpflow's are %+v", got, want)
	}
	cfg.HTTPMaxSockets, cfg.HTTPMaxPending, cfg.HTTPMaxSeries, cfg.HTTPMaxRoutes = 11, 12, 13, 14
	if got, want := httpOptions(cfg), (httpflow.Options{MaxSockets: 11, MaxPending: 12, MaxSeries: 13, MaxRoutes: 14}); got != want {
		t.Errorf("httpOptions = %+v, want %+v", got, want)
	}
}
