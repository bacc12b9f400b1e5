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

// NamesIDs reports whether a pattern has a literal segment the heuristic
// would take for an identifier ("/status/200"): then paths that differ in
// such segments may take different routes.
func (t *Templater) NamesIDs() bool {
	if t == nil {
		return false
	}
	for _, p := range t.patterns {
		for _, seg := range p {
			if !strings.HasPrefix(seg, "{") && isID(seg) {
				return true
			}
		}
	}
	return false
}

// Template returns the first pattern the path matches, else Template(path).
func (t *Templater) Template(path string) string {
	return string(t.Append(nil, path))
}

// Append appends t.Template(path) to dst; with room in dst it allocates
// nothing, so a table can look the route up before it keeps a copy.
func (t *Templater) Append(dst []byte, path string) []byte {
	if t != nil {
		trimmed := strings.Trim(path, "/")
		n := strings.Count(trimmed, "/") + 1
	next:
		for i, p := range t.patterns {
			if len(p) != n {
				continue
			}
			rest := trimmed
			for _, want := range p {
				seg, more, _ := strings.Cut(rest, "/")
				if seg != want && !strings.HasPrefix(want, "{") {
					continue next
				}
				rest = more
			}
			return append(dst, t.names[i]...)
		}
	}
	return AppendTemplate(dst, path)
}

// maxSegments bounds the depth of a template; deeper paths end in "/*".
const maxSegments = 8

// Template replaces the path segments that identify something (numbers,
// UUIDs, hex digests, long tokens with digits) by {id}. Queries never reach
// here (the parser drops them).
func Template(path string) string {
	return string(AppendTemplate(nil, path))
}

// AppendTemplate appends Template(path) to dst.
func AppendTemplate(dst []byte, path string) []byte {
	if path == "" || path == "/" || path == "*" {
		return append(dst, '/')
	}
	rest, n := strings.Trim(path, "/"), 0
	for more := true; more; n++ {
		if n == maxSegments {
			return append(dst, "/*"...)
		}
		var seg string
		seg, rest, more = strings.Cut(rest, "/")
		dst = append(dst, '/')
		if isID(seg) {
			dst = append(dst, "{id}"...)
		} else {
			dst = append(dst, seg...)
		}
	}
	if strings.HasSuffix(path, "/") && n < maxSegments {
		dst = append(dst, '/')
	}
	return dst
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
