package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestGenerateWritesRulesAndDashboard(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "s.yaml")
	os.WriteFile(spec, []byte("version: strata/v1\nname: shop\nslos:\n  - {name: a, service: shop/cart, objective: 99.5, window: 28d, sli: {kind: availability}}\n"), 0o644)
	var out, errb bytes.Buffer
	dash := filepath.Join(dir, "d.json")
	if code := run([]string{"slo", "generate", "--dashboard", dash, spec}, &out, &errb); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	if n := strings.Count(out.String(), "record: strata_slo:sli_error:ratio_rate"); n != 8 {
		t.Errorf("%d SLI windows recorded, want 8 (5m 30m 1h 2h 6h 1d 3d 28d)", n)
	}
	if !strings.Contains(out.String(), "> 0.072 and") { // 14.4 x 0.5 %
		t.Errorf("page threshold for 99.5%% missing:\n%s", out.String())
	}
	var d struct {
		UID    string `json:"uid"`
		Panels []struct{ Type string }
	}
	b, err := os.ReadFile(dash)
	if err != nil || json.Unmarshal(b, &d) != nil {
		t.Fatalf("dashboard: %v", err)
	}
	if d.UID != "strata-slo-shop" || len(d.Panels) != 5 {
		t.Errorf("dashboard uid %s with %d panels, want strata-slo-shop with a row and 4 panels", d.UID, len(d.Panels))
	}
}

func TestBadSpecAndUsage(t *testing.T) {
	dir := t.TempDir()
	spec := filepath.Join(dir, "s.yaml")
	os.WriteFile(spec, []byte("version: strata/v1\nname: shop\nslos:\n  - {name: a, service: shop/cart, objective: 99.5, window: 1w, sli: {kind: availability}}\n"), 0o644)
	var out, errb bytes.Buffer
	if code := run([]string{"slo", "generate", spec}, &out, &errb); code != exitSpec {
		t.Errorf("exit %d, want %d", code, exitSpec)
	}
	if want := spec + `:4: slos[0].window: must be 28d or 30d, got "1w"`; !strings.Contains(errb.String(), want) {
		t.Errorf("stderr %q lacks %q", errb.String(), want)
	}
	if out.Len() != 0 {
		t.Errorf("wrote rules for a bad spec: %s", out.String())
	}
	errb.Reset()
	if code := run([]string{"slo"}, &out, &errb); code != exitUsage || !strings.Contains(errb.String(), "usage: strata slo generate") {
		t.Errorf("exit %d, stderr %q", code, errb.String())
	}
}
