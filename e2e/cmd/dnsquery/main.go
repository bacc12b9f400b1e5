// Command dnsquery asks a DNS server one question per name, as a stub
// resolver would (recursion desired, UDP, one try), and prints one JSON line
// per answer: the response code and every answer record with its TTL. The
// server defaults to the first nameserver of /etc/resolv.conf, which inside
// `ip netns exec` is the namespace's own.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/miekg/dns"
)

type record struct {
	Name string `json:"name"`
	Type string `json:"type"`
	TTL  uint32 `json:"ttl"`
	Data string `json:"data"`
}

type result struct {
	Name    string   `json:"name"`
	Type    string   `json:"type"`
	Rcode   string   `json:"rcode"`
	Answers []record `json:"answers"`
}

func main() {
	server := flag.String("server", "", "host:port (default: the first nameserver of /etc/resolv.conf)")
	qtype := flag.String("type", "A", "question type")
	timeout := flag.Duration("timeout", 2*time.Second, "per question")
	flag.Parse()
	t, ok := dns.StringToType[strings.ToUpper(*qtype)]
	if !ok {
		fail("unknown type %q", *qtype)
	}
	if *server == "" {
		conf, err := dns.ClientConfigFromFile("/etc/resolv.conf")
		if err != nil || len(conf.Servers) == 0 {
			fail("no nameserver in /etc/resolv.conf: %v", err)
		}
		*server = net.JoinHostPort(conf.Servers[0], conf.Port)
	}
	client := &dns.Client{Timeout: *timeout}
	for _, name := range flag.Args() {
		q := new(dns.Msg)
		q.SetQuestion(dns.Fqdn(name), t)
		resp, _, err := client.Exchange(q, *server)
		if err != nil {
			fail("%s: %v", name, err)
		}
		r := result{Name: name, Type: dns.TypeToString[t], Rcode: dns.RcodeToString[resp.Rcode], Answers: []record{}}
		for _, rr := range resp.Answer {
			h := rr.Header()
			data := strings.TrimPrefix(rr.String(), h.String())
			r.Answers = append(r.Answers, record{Name: h.Name, Type: dns.TypeToString[h.Rrtype], TTL: h.Ttl, Data: data})
		}
		out, _ := json.Marshal(r)
		fmt.Println(string(out))
	}
}

func fail(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "dnsquery: "+format+"\n", args...)
	os.Exit(1)
}
