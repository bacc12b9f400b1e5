// Command dnsfault is a broken name server for tests: it answers every
// question, over UDP, with one response code (SERVFAIL by default), as an
// upstream resolver in trouble does.
package main

import (
	"flag"
	"fmt"
	"log"
	"strings"

	"github.com/miekg/dns"
)

func main() {
	addr := flag.String("listen", ":53", "UDP address to answer on")
	rcode := flag.String("rcode", "SERVFAIL", "response code of every answer (SERVFAIL, REFUSED, NXDOMAIN, …)")
	flag.Parse()
	code, ok := dns.StringToRcode[strings.ToUpper(*rcode)]
	if !ok {
		log.Fatalf("dnsfault: unknown rcode %q", *rcode)
	}
	h := dns.HandlerFunc(func(w dns.ResponseWriter, q *dns.Msg) {
		m := new(dns.Msg)
		m.SetRcode(q, code)
		w.WriteMsg(m)
	})
	fmt.Println("dnsfault: answering", *rcode, "on", *addr)
	log.Fatal((&dns.Server{Addr: *addr, Net: "udp", Handler: h}).ListenAndServe())
}
