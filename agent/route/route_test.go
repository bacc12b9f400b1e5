package route

import "testing"

func TestTemplate(t *testing.T) {
	for in, want := range map[string]string{
		"":                           "/",
		"/":                          "/",
		"/users/123/orders/9f8e2c1a": "/users/{id}/orders/{id}",
		"/api/users/42":              "/api/users/{id}",
		"/items/550e8400-e29b-41d4-a716-446655440000": "/items/{id}",
		"/blobs/sha256:abc":                           "/blobs/sha256:abc",
		"/v1/health":                                  "/v1/health",
		"/static/app.js":                              "/static/app.js",
		"/files/deadbeef":                             "/files/deadbeef", // a word, no digit
		"/t/aZ9kLmN0pQrStUvWx":                        "/t/{id}",
		"/a/b/c/d/e/f/g/h/i/j":                        "/a/b/c/d/e/f/g/h/*",
		"/docs/":                                      "/docs/",
		"/a/b/c/d/e/f/g/h/":                           "/a/b/c/d/e/f/g/h", // as deep as a template goes
		"/a/b/c/d/e/f/g/":                             "/a/b/c/d/e/f/g/",
		"//x//":                                       "/x/",
		"/2024/report":                                "/{id}/report",
	} {
		if got := Template(in); got != want {
			t.Errorf("Template(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestPatternsFirst(t *testing.T) {
	tm, err := New([]string{"/api/v1/users/{user}/orders/{order}", "/files/{name}"})
	if err != nil {
		t.Fatal(err)
	}
	for in, want := range map[string]string{
		"/api/v1/users/alice/orders/77": "/api/v1/users/{user}/orders/{order}",
		"/files/report.pdf":             "/files/{name}",
		"/files/a/b":                    "/files/a/b", // not the pattern's shape: the heuristic
		"/users/42":                     "/users/{id}",
	} {
		if got := tm.Template(in); got != want {
			t.Errorf("Template(%q) = %q, want %q", in, got, want)
		}
	}
	// A table looks its routes up without allocating.
	buf := make([]byte, 0, 64)
	if n := testing.AllocsPerRun(100, func() { buf = tm.Append(buf[:0], "/api/v1/users/bob/orders/7") }); n != 0 {
		t.Errorf("Append allocated %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { buf = tm.Append(buf[:0], "/users/42/cart") }); n != 0 {
		t.Errorf("Append (heuristic) allocated %v times", n)
	}
	for _, bad := range []string{"api/x", "/a?b=1", "/x/{id", "/x/a{id}"} {
		if _, err := New([]string{bad}); err == nil {
			t.Errorf("pattern %q accepted", bad)
		}
	}
}
