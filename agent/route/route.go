// Package route turns request paths into low-cardinality templates:
// /users/123/orders/9f8e2c1a => /users/{id}/orders/{id}.
package route

import (
	"fmt"
	"strings"
)

// Templater applies user-given patterns first, then the heuristic.
type Templater struct {
	patterns [][]string // split on "/"; "{...}" matches one segment
	names    []string
}

// New checks patterns like "/api/v1/users/{user}/orders/{order}".
func New(patterns []string) (*Templater, error) {
	t := &Templater{}
	for _, p := range patterns {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?# ") {
			return nil, fmt.Errorf("route pattern %q: must be a path starting with / (no query, no spaces)", p)
		}
		segs := strings.Split(strings.Trim(p, "/"), "/")
		for _, s := range segs {
			if strings.ContainsAny(s, "{}") && !(strings.HasPrefix(s, "{") && strings.HasSuffix(s, "}") && len(s) > 2) {
				return nil, fmt.Errorf("route pattern %q: a placeholder is a whole segment like {id}, not %q", p, s)
			}
		}
		t.patterns = append(t.patterns, segs)
		t.names = append(t.names, p)
	}
	return t, nil
}

// Template returns the first pattern the path matches, else Template(path).
func (t *Templater) Template(path string) string {
	if t != nil && len(t.patterns) > 0 {
		segs := strings.Split(strings.Trim(path, "/"), "/")
	next:
		for i, p := range t.patterns {
			if len(p) != len(segs) {
				continue
			}
			for j, s := range p {
				if s != segs[j] && !strings.HasPrefix(s, "{") {
					continue next
				}
			}
			return t.names[i]
		}
	}
	return Template(path)
}

// maxSegments bounds the depth of a template; deeper paths end in "/*".
const maxSegments = 8

// Template replaces the path segments that identify something (numbers,
// UUIDs, hex digests, long tokens with digits) by {id}. Queries never reach
// here (the parser drops them).
func Template(path string) string {
	if path == "" || path == "/" || path == "*" {
		return "/"
	}
	segs := strings.Split(strings.Trim(path, "/"), "/")
	var b strings.Builder
	for i, s := range segs {
		if i == maxSegments {
			b.WriteString("/*")
			break
		}
		b.WriteByte('/')
		if isID(s) {
			b.WriteString("{id}")
		} else {
			b.WriteString(s)
		}
	}
	if strings.HasSuffix(path, "/") && len(segs) < maxSegments {
		b.WriteByte('/')
	}
	return b.String()
}

func isID(s string) bool {
	if s == "" {
		return false
	}
	digits, hex := 0, true
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			digits++
		case c >= 'a' && c <= 'f', c >= 'A' && c <= 'F', c == '-':
		default:
			hex = false
		}
	}
	switch {
	case digits == len(s): // 42
		return true
	case hex && digits > 0 && len(s) >= 8: // 9f8e2c1a, a UUID, a digest
		return true
	case digits > 0 && len(s) >= 16: // opaque tokens
		return true
	}
	return false
}
