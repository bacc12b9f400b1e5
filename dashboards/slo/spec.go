// Package slo turns a small SLO spec (service, SLI, objective, window) into
// Prometheus recording rules, multi-window multi-burn-rate alerts and an
// error-budget dashboard, all over the agent's HTTP server metrics.
package slo

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/stratanet/strata/probes/event"
)

// Spec is one file: a name (the rule group's and the dashboard's) and its SLOs.
//
//	version: strata/v1
//	name: shop-checkout
//	slos:
//	  - name: checkout-availability
//	    service: shop/checkout        # namespace/workload, as the agent names it
//	    objective: 99.9               # percent of good requests
//	    window: 30d                   # 28d or 30d
//	    sli: {kind: availability}     # good = not 5xx and answered, server side
//	    filter:                       # optional
//	      routes: [/cart, /checkout/{id}]
//	      exclude_routes: [/events/stream]
//	      methods: [GET, POST]
//	  - name: checkout-latency
//	    service: shop/checkout
//	    objective: 99
//	    window: 28d
//	    sli: {kind: latency, threshold: 0.5}   # good = answered within 0.5 s (a bucket bound)
type Spec struct {
	Version string
	Name    string
	SLOs    []SLO
}

// SLO is one objective.
type SLO struct {
	Name      string
	Namespace string
	Workload  string
	Objective float64 // percent, e.g. 99.9
	Window    string  // 28d or 30d
	Kind      string  // availability or latency
	Threshold float64 // seconds, latency only: a bucket bound of the agent's histograms
	Routes    []string
	Exclude   []string
	Methods   []string
}

// Error is a spec problem, located.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d: %s: %s", e.File, e.Line, e.Field, e.Msg)
}

var nameRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)

// Parse reads and checks a spec. Every error names the file, the line and
// the field.
func Parse(file string, data []byte) (*Spec, error) {
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	p := parser{file: file}
	root := doc.Content[0]
	if err := p.keys(root, "", "version", "name", "slos"); err != nil {
		return nil, err
	}
	s := &Spec{}
	var err error
	if s.Version, err = p.str(root, "", "version", true); err != nil {
		return nil, err
	}
	if s.Version != "strata/v1" {
		return nil, p.at(value(root, "version"), "version", "must be strata/v1, got %q", s.Version)
	}
	if s.Name, err = p.name(root, "", "name"); err != nil {
		return nil, err
	}
	list := value(root, "slos")
	if list == nil || list.Kind != yaml.SequenceNode || len(list.Content) == 0 {
		return nil, p.at(orNode(list, root), "slos", "must be a list of at least one SLO")
	}
	seen := map[string]int{}
	for i, n := range list.Content {
		o, err := p.slo(n, fmt.Sprintf("slos[%d]", i))
		if err != nil {
			return nil, err
		}
		if line, dup := seen[o.Name]; dup {
			return nil, p.at(value(n, "name"), fmt.Sprintf("slos[%d].name", i), "%q is already the name of the SLO at line %d", o.Name, line)
		}
		seen[o.Name] = n.Line
		s.SLOs = append(s.SLOs, *o)
	}
	return s, nil
}

type parser struct{ file string }

func (p parser) at(n *yaml.Node, field, format string, args ...any) error {
	return &Error{File: p.file, Line: n.Line, Field: field, Msg: fmt.Sprintf(format, args...)}
}

func orNode(n, parent *yaml.Node) *yaml.Node {
	if n != nil {
		return n
	}
	return parent
}

func value(m *yaml.Node, key string) *yaml.Node {
	if m == nil || m.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		if m.Content[i].Value == key {
			return m.Content[i+1]
		}
	}
	return nil
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// keys rejects a non-mapping and any key not allowed (a typo is an error,
// not a silently ignored field).
func (p parser) keys(m *yaml.Node, path string, allowed ...string) error {
	if m.Kind != yaml.MappingNode {
		return p.at(m, orDot(path), "must be a mapping")
	}
	for i := 0; i+1 < len(m.Content); i += 2 {
		k := m.Content[i]
		ok := false
		for _, a := range allowed {
			ok = ok || k.Value == a
		}
		if !ok {
			return p.at(k, join(path, k.Value), "unknown field (known: %s)", strings.Join(allowed, ", "))
		}
	}
	return nil
}

func orDot(path string) string {
	if path == "" {
		return "."
	}
	return path
}

func (p parser) str(m *yaml.Node, path, key string, required bool) (string, error) {
	n := value(m, key)
	if n == nil {
		if required {
			return "", p.at(m, join(path, key), "missing")
		}
		return "", nil
	}
	if n.Kind != yaml.ScalarNode || n.Value == "" {
		return "", p.at(n, join(path, key), "must be a non-empty string")
	}
	return n.Value, nil
}

func (p parser) name(m *yaml.Node, path, key string) (string, error) {
	s, err := p.str(m, path, key, true)
	if err != nil {
		return "", err
	}
	if !nameRE.MatchString(s) {
		return "", p.at(value(m, key), join(path, key), "%q must be lower-case letters, digits and dashes (at most 63)", s)
	}
	return s, nil
}

func (p parser) list(m *yaml.Node, path, key string) ([]string, error) {
	n := value(m, key)
	if n == nil {
		return nil, nil
	}
	if n.Kind != yaml.SequenceNode || len(n.Content) == 0 {
		return nil, p.at(n, join(path, key), "must be a non-empty list of strings")
	}
	var out []string
	for i, e := range n.Content {
		if e.Kind != yaml.ScalarNode || e.Value == "" {
			return nil, p.at(e, fmt.Sprintf("%s[%d]", join(path, key), i), "must be a non-empty string")
		}
		out = append(out, e.Value)
	}
	return out, nil
}

func (p parser) slo(n *yaml.Node, path string) (*SLO, error) {
	if err := p.keys(n, path, "name", "service", "objective", "window", "sli", "filter"); err != nil {
		return nil, err
	}
	o := &SLO{}
	var err error
	if o.Name, err = p.name(n, path, "name"); err != nil {
		return nil, err
	}
	svc, err := p.str(n, path, "service", true)
	if err != nil {
		return nil, err
	}
	ns, wl, ok := strings.Cut(svc, "/")
	if !ok || ns == "" || wl == "" || strings.Contains(wl, "/") {
		return nil, p.at(value(n, "service"), join(path, "service"), "must be namespace/workload (e.g. shop/checkout), got %q", svc)
	}
	o.Namespace, o.Workload = ns, wl

	obj, err := p.str(n, path, "objective", true)
	if err != nil {
		return nil, err
	}
	if o.Objective, err = strconv.ParseFloat(obj, 64); err != nil || o.Objective <= 0 || o.Objective >= 100 {
		return nil, p.at(value(n, "objective"), join(path, "objective"), "must be a percentage above 0 and below 100 (e.g. 99.9), got %q", obj)
	}
	if o.Window, err = p.str(n, path, "window", true); err != nil {
		return nil, err
	}
	if o.Window != "28d" && o.Window != "30d" {
		return nil, p.at(value(n, "window"), join(path, "window"), "must be 28d or 30d, got %q", o.Window)
	}

	sli := value(n, "sli")
	if sli == nil {
		return nil, p.at(n, join(path, "sli"), "missing: {kind: availability} or {kind: latency, threshold: SECONDS}")
	}
	sp := join(path, "sli")
	if err := p.keys(sli, sp, "kind", "threshold"); err != nil {
		return nil, err
	}
	if o.Kind, err = p.str(sli, sp, "kind", true); err != nil {
		return nil, err
	}
	th := value(sli, "threshold")
	switch o.Kind {
	case "availability":
		if th != nil {
			return nil, p.at(th, join(sp, "threshold"), "only a latency SLI has a threshold")
		}
	case "latency":
		if th == nil {
			return nil, p.at(sli, join(sp, "threshold"), "missing: the latency bound in seconds, one of %s", bounds())
		}
		o.Threshold, err = strconv.ParseFloat(th.Value, 64)
		if err != nil || !isBound(o.Threshold) {
			return nil, p.at(th, join(sp, "threshold"), "must be a bucket bound of the agent's HTTP histograms (seconds): one of %s; got %q", bounds(), th.Value)
		}
	default:
		return nil, p.at(value(sli, "kind"), join(sp, "kind"), "must be availability or latency, got %q", o.Kind)
	}

	if f := value(n, "filter"); f != nil {
		fp := join(path, "filter")
		if err := p.keys(f, fp, "routes", "exclude_routes", "methods"); err != nil {
			return nil, err
		}
		if o.Routes, err = p.list(f, fp, "routes"); err != nil {
			return nil, err
		}
		if o.Exclude, err = p.list(f, fp, "exclude_routes"); err != nil {
			return nil, err
		}
		if o.Methods, err = p.list(f, fp, "methods"); err != nil {
			return nil, err
		}
		for i, m := range o.Methods {
			if m != strings.ToUpper(m) || strings.ContainsAny(m, " |") {
				return nil, p.at(value(f, "methods").Content[i], fmt.Sprintf("%s.methods[%d]", fp, i), "must be an upper-case HTTP method, got %q", m)
			}
		}
	}
	return o, nil
}

func isBound(v float64) bool {
	for _, b := range event.HTTPBuckets {
		if b == v {
			return true
		}
	}
	return false
}

func bounds() string {
	var s []string
	for _, b := range event.HTTPBuckets {
		s = append(s, strconv.FormatFloat(b, 'g', -1, 64))
	}
	return strings.Join(s, ", ")
}
