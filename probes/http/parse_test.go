package http

import "testing"

func TestParseRequest(t *testing.T) {
	cases := []struct {
		head string
		want Request
		ok   bool
	}{
		{"GET /users/42?token=secret HTTP/1.1\r\nHost: x\r\n", Request{Method: "GET", Path: "/users/42"}, true},
		{"POST /api HTTP/1.0\r\ntraceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\r\n\r\n",
			Request{Method: "POST", Path: "/api", Traceparent: "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}, true},
		{"GET http://example.com/a/b HTTP/1.1\r\n", Request{Method: "GET", Path: "/a/b"}, true},
		{"OPTIONS * HTTP/1.1\r\n", Request{Method: "OPTIONS", Path: "*"}, true},
		{"GET /cut-before-the-end", Request{}, false},                      // line incomplete
		{"GET /x HTTP/2.0\r\n", Request{}, false},                          // not HTTP/1
		{"GETS /x HTTP/1.1\r\n", Request{}, false},                         // not a method
		{"GET x HTTP/1.1\r\n", Request{}, false},                           // not a path
		{"GET /a\x00b HTTP/1.1\r\n", Request{}, false},                     // binary
		{"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", Request{}, false}, // TLS ClientHello
	}
	for _, c := range cases {
		got, ok := ParseRequest(c.head)
		if ok != c.ok || got != c.want {
			t.Errorf("ParseRequest(%q) = %+v, %v; want %+v, %v", c.head, got, ok, c.want, c.ok)
		}
	}
}

func TestParseResponse(t *testing.T) {
	for head, want := range map[string]int{
		"HTTP/1.1 200 OK\r\n": 200, "HTTP/1.0 404 Not Found\r\n": 404, "HTTP/1.1 500\r\n": 500,
		"HTTP/1.1 999 Nope\r\n": 0, "HTTP/1.1 20x OK\r\n": 0, "HTTP/1.1 2000 OK\r\n": 0, "HTTP/2 200\r\n": 0,
	} {
		got, ok := ParseResponse(head)
		if (want == 0) == ok || got.Status != want {
			t.Errorf("ParseResponse(%q) = %v, %v; want %d", head, got, ok, want)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add("GET /users/42?x=1 HTTP/1.1\r\nHost: a\r\ntraceparent: 00-1-2-01\r\n\r\n")
	f.Add("HTTP/1.1 200 OK\r\n")
	f.Add("\x16\x03\x01")
	f.Fuzz(func(t *testing.T, head string) {
		if r, ok := ParseRequest(head); ok {
			if !methods[r.Method] || r.Path == "" || (r.Path[0] != '/' && r.Path != "*") {
				t.Fatalf("accepted %+v from %q", r, head)
			}
			for i := 0; i < len(r.Path); i++ {
				if r.Path[i] == '?' || r.Path[i] < 0x21 || r.Path[i] > 0x7e {
					t.Fatalf("path %q leaks a query or a control byte", r.Path)
				}
			}
		}
		if r, ok := ParseResponse(head); ok && (r.Status < 100 || r.Status > 599) {
			t.Fatalf("status %d from %q", r.Status, head)
		}
	})
}
