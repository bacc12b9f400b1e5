// Command httpserver is a test peer: every request is answered after
// -delay with -status and a short body, except those whose path starts with
// a -route prefix, answered as that route says.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// answer is how a request is answered.
type answer struct {
	status int
	delay  time.Duration
}

// routes are -route flags: PREFIX=STATUS or PREFIX=STATUS@DELAY, first
// match wins.
type routes struct {
	prefixes []string
	answers  []answer
}

func (r *routes) String() string { return strings.Join(r.prefixes, ",") }

func (r *routes) Set(s string) error {
	prefix, spec, ok := strings.Cut(s, "=")
	if !ok || !strings.HasPrefix(prefix, "/") {
		return fmt.Errorf("want /PREFIX=STATUS[@DELAY], got %q", s)
	}
	code, delay, _ := strings.Cut(spec, "@")
	var a answer
	var err error
	if a.status, err = strconv.Atoi(code); err != nil || a.status < 100 || a.status > 599 {
		return fmt.Errorf("status %q: want 100..599", code)
	}
	if delay != "" {
		if a.delay, err = time.ParseDuration(delay); err != nil {
			return err
		}
	}
	r.prefixes, r.answers = append(r.prefixes, prefix), append(r.answers, a)
	return nil
}

func main() {
	addr := flag.String("listen", ":8080", "address to listen on")
	delay := flag.Duration("delay", 0, "time each request takes")
	status := flag.Int("status", 200, "status of every response")
	var special routes
	flag.Var(&special, "route", "PREFIX=STATUS[@DELAY]: requests whose path starts with PREFIX get STATUS after DELAY (repeatable)")
	flag.Parse()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		a := answer{*status, *delay}
		for i, p := range special.prefixes {
			if strings.HasPrefix(r.URL.Path, p) {
				a = special.answers[i]
				break
			}
		}
		time.Sleep(a.delay)
		w.WriteHeader(a.status)
		fmt.Fprintln(w, "ok")
	})
	log.Fatal(http.ListenAndServe(*addr, h))
}
