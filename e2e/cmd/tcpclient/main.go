// Command tcpclient is a test peer: -count sequential connections, each
// sending -requests requests of -send bytes and reading -expect bytes back.
// It prints one JSON line with what it did.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"time"
)

type result struct {
	OK       int      `json:"ok"`
	Failed   int      `json:"failed"`
	Errors   []string `json:"errors"`
	Sent     int64    `json:"sent"`
	Received int64    `json:"received"`
}

func main() {
	addr := flag.String("connect", "", "server address")
	count := flag.Int("count", 1, "connections, one after another")
	requests := flag.Int("requests", 1, "requests per connection")
	send := flag.Int("send", 100, "bytes per request")
	expect := flag.Int("expect", 100, "bytes per reply")
	hold := flag.Duration("hold", 0, "pause before each request after the first")
	timeout := flag.Duration("timeout", 5*time.Second, "connect timeout")
	allowFail := flag.Bool("allow-fail", false, "exit 0 even when connections fail")
	flag.Parse()

	r := result{Errors: []string{}}
	seen := map[string]bool{}
	for i := 0; i < *count; i++ {
		sent, recv, err := conversation(*addr, *timeout, *requests, *send, *expect, *hold)
		r.Sent += sent
		r.Received += recv
		if err != nil {
			r.Failed++
			if msg := describe(err); !seen[msg] {
				seen[msg] = true
				r.Errors = append(r.Errors, msg)
			}
			continue
		}
		r.OK++
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if r.Failed > 0 && !*allowFail {
		os.Exit(1)
	}
}

func conversation(addr string, timeout time.Duration, requests, send, expect int, hold time.Duration) (sent, recv int64, err error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return 0, 0, err
	}
	defer c.Close()
	req, resp := make([]byte, send), make([]byte, expect)
	for i := 0; i < requests; i++ {
		if i > 0 {
			time.Sleep(hold)
		}
		n, err := c.Write(req)
		sent += int64(n)
		if err != nil {
			return sent, recv, err
		}
		m, err := io.ReadFull(c, resp)
		recv += int64(m)
		if err != nil {
			return sent, recv, err
		}
	}
	return sent, recv, nil
}

// describe drops the addresses from network errors: each connection has its
// own local port, so with them no two failures would ever read the same.
func describe(err error) string {
	var op *net.OpError
	if !errors.As(err, &op) {
		return err.Error()
	}
	inner := op.Err
	for u := errors.Unwrap(inner); u != nil; u = errors.Unwrap(inner) {
		inner = u
	}
	return op.Op + ": " + inner.Error()
}
