// Command resolve is a test client that looks names up with Go's own DNS
// resolver (the one static Go binaries use: a connected UDP socket, write
// and read; TCP with `options use-vc`), reading /etc/resolv.conf, which
// inside `ip netns exec` is the namespace's own. Each name is looked up -n
// times; with -connect, each successful lookup is followed by a TCP
// connection to the first address, closed at once. With -random N it also
// looks up N random names under -suffix. It prints one JSON line.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

type result struct {
	Lookups   int      `json:"lookups"`
	OK        int      `json:"ok"`
	Failed    int      `json:"failed"`
	Connected int      `json:"connected"`
	Addrs     []string `json:"addrs"`  // distinct, in the order first seen
	Errors    []string `json:"errors"` // distinct
}

func main() {
	n := flag.Int("n", 1, "lookups per name")
	network := flag.String("network", "ip4", "ip4 (A), ip6 (AAAA) or ip (both)")
	connect := flag.Int("connect", 0, "TCP port to connect to after each successful lookup (0: none)")
	random := flag.Int("random", 0, "random names to look up besides the given ones")
	suffix := flag.String("suffix", "flood.test", "domain of the random names")
	parallel := flag.Int("parallel", 1, "lookups at once")
	allowFail := flag.Bool("allow-fail", false, "exit 0 even when lookups fail")
	flag.Parse()

	var names []string
	for _, name := range flag.Args() {
		for i := 0; i < *n; i++ {
			names = append(names, name)
		}
	}
	for i := 0; i < *random; i++ {
		b := make([]byte, 6)
		rand.Read(b)
		names = append(names, hex.EncodeToString(b)+"."+*suffix+".")
	}

	r := &net.Resolver{PreferGo: true}
	var mu sync.Mutex
	res := result{Addrs: []string{}, Errors: []string{}}
	seen := map[string]bool{}
	note := func(list *[]string, s string) {
		if !seen[s] {
			seen[s] = true
			*list = append(*list, s)
		}
	}
	work := make(chan string)
	var wg sync.WaitGroup
	for w := 0; w < max(1, *parallel); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for name := range work {
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				ips, err := r.LookupIP(ctx, *network, name)
				cancel()
				mu.Lock()
				res.Lookups++
				if err != nil {
					res.Failed++
					if de, ok := err.(*net.DNSError); ok {
						note(&res.Errors, describe(de))
					} else {
						note(&res.Errors, err.Error())
					}
					mu.Unlock()
					continue
				}
				res.OK++
				for _, ip := range ips {
					note(&res.Addrs, ip.String())
				}
				mu.Unlock()
				if *connect > 0 && len(ips) > 0 {
					c, err := net.DialTimeout("tcp", net.JoinHostPort(ips[0].String(), strconv.Itoa(*connect)), 5*time.Second)
					mu.Lock()
					if err != nil {
						note(&res.Errors, err.Error())
					} else {
						res.Connected++
						c.Close()
					}
					mu.Unlock()
				}
			}
		}()
	}
	for _, name := range names {
		work <- name
	}
	close(work)
	wg.Wait()
	out, _ := json.Marshal(res)
	fmt.Println(string(out))
	if (res.Failed > 0 || res.Connected < countConnects(res, *connect)) && !*allowFail {
		os.Exit(1)
	}
}

func countConnects(r result, port int) int {
	if port == 0 {
		return 0
	}
	return r.OK
}

// describe keeps what kind of failure it was, not which name.
func describe(e *net.DNSError) string {
	switch {
	case e.IsNotFound:
		return "not found"
	case e.IsTimeout:
		return "timeout"
	}
	return e.Err
}
