package http

import (
	"strconv"
	"strings"

	"github.com/stratanet/strata/probes/event"
)

// Request is what the first bytes of a request say.
type Request struct {
	Method      string
	Path        string // without query or fragment
	Traceparent string // W3C header, when it came within the captured bytes
}

// Response is what the first bytes of a response say.
type Response struct {
	Status int
}

var methods = map[string]bool{"GET": true, "POST": true, "PUT": true, "DELETE": true,
	"HEAD": true, "PATCH": true, "OPTIONS": true}

// ParseRequest reads a request line ("GET /path HTTP/1.1"). Anything else
// (a body that happens to start with "GET ", another protocol) is refused,
// so it can never become a series.
func ParseRequest(head string) (Request, bool) {
	// A server may read less than the whole line; the path must still be
	// complete (followed by a space) and the version a prefix of HTTP/1.x.
	line, rest, whole := strings.Cut(head, "\r\n")
	method, rest1, ok := strings.Cut(line, " ")
	if !ok || !methods[method] {
		return Request{}, false
	}
	target, version, ok := strings.Cut(rest1, " ")
	if !ok {
		return Request{}, false
	}
	if whole && version != "HTTP/1.1" && version != "HTTP/1.0" {
		return Request{}, false
	}
	if !whole && !strings.HasPrefix("HTTP/1.1", version) && !strings.HasPrefix("HTTP/1.0", version) {
		return Request{}, false
	}
	// Absolute form, through a proxy; a path's query may hold "://" too.
	if i := strings.Index(target, "://"); i > 0 && target[0] != '/' {
		target = target[i+3:]
		if j := strings.IndexByte(target, '/'); j >= 0 {
			target = target[j:]
		} else {
			target = "/"
		}
	}
	if !strings.HasPrefix(target, "/") && target != "*" {
		return Request{}, false
	}
	if i := strings.IndexAny(target, "?#"); i >= 0 {
		target = target[:i]
	}
	for i := 0; i < len(target); i++ {
		if c := target[i]; c < 0x21 || c > 0x7e {
			return Request{}, false
		}
	}
	return Request{Method: method, Path: target, Traceparent: header(rest, "traceparent")}, true
}

// ParseResponse reads a status line ("HTTP/1.1 200 OK").
func ParseResponse(head string) (Response, bool) {
	if len(head) < 12 || (head[:9] != "HTTP/1.1 " && head[:9] != "HTTP/1.0 ") {
		return Response{}, false
	}
	code, err := strconv.Atoi(head[9:12])
	if err != nil || code < 100 || code > 599 || (len(head) > 12 && head[12] != ' ' && head[12] != '\r') {
		return Response{}, false
	}
	return Response{Status: code}, true
}

// Fill sets e's request or response fields from the head, copying only
// what it keeps (the head may be a view of a reused buffer).
func Fill(e *event.HTTP, head string) { fill(e, head, strings.Clone) }

// fill is Fill with keep making the copy of the path.
func fill(e *event.HTTP, head string, keep func(string) string) {
	if e.Response {
		r, ok := ParseResponse(head)
		e.Valid, e.Status = ok, r.Status
		return
	}
	r, ok := ParseRequest(head)
	if !ok {
		return
	}
	e.Valid = true
	e.Method = canonical(r.Method)
	e.Path = keep(r.Path)
	if r.Traceparent != "" {
		e.Traceparent = strings.Clone(r.Traceparent)
	}
}

// canonical returns the package's own copy of a method name.
func canonical(m string) string {
	for _, c := range methodNames {
		if c == m {
			return c
		}
	}
	return strings.Clone(m)
}

var methodNames = []string{"GET", "POST", "PUT", "DELETE", "HEAD", "PATCH", "OPTIONS"}

// header finds a header's value among complete header lines.
func header(lines, name string) string {
	for {
		line, rest, ok := strings.Cut(lines, "\r\n")
		if !ok || line == "" {
			return ""
		}
		if k, v, ok := strings.Cut(line, ":"); ok && strings.EqualFold(strings.TrimSpace(k), name) {
			return strings.TrimSpace(v)
		}
		lines = rest
	}
}
