// Command httpserver is a test peer: every request is answered after
// -delay with -status and a short body.
package main

import (
	"flag"
	"fmt"
	"log"
	"net/http"
	"time"
)

func main() {
	addr := flag.String("listen", ":8080", "address to listen on")
	delay := flag.Duration("delay", 0, "time each request takes")
	status := flag.Int("status", 200, "status of every response")
	flag.Parse()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(*delay)
		w.WriteHeader(*status)
		fmt.Fprintln(w, "ok")
	})
	log.Fatal(http.ListenAndServe(*addr, h))
}
