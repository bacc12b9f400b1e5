// Command tcpclient is a test peer: -count connections, -parallel at a
// time, each sending -requests requests of -send bytes and reading -expect
// bytes back. It prints one JSON line with what it did.
package main

import (
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"sync"
	"time"
)

type result struct {
	OK       int      `json:"ok"`
	Failed   int      `json:"failed"`
	Errors   []string `json:"errors"`
	Sent     int64    `json:"sent"`
	Received int64    `json:"received"`
	Seconds  float64  `json:"seconds"`
}

func main() {
	addr := flag.String("connect", "", "server address")
	count := flag.Int("count", 1, "connections in all")
	parallel := flag.Int("parallel", 1, "connections open at once (each worker makes its share one after another)")
	requests := flag.Int("requests", 1, "requests per connection")
	send := flag.Int("send", 100, "bytes per request")
	expect := flag.Int("expect", 100, "bytes per reply")
	hold := flag.Duration("hold", 0, "pause before each request after the first")
	timeout := flag.Duration("timeout", 5*time.Second, "connect timeout")
	asHTTP := flag.Bool("http", false, "each request is an HTTP GET and each reply its response (tcpserver -http): -send and -expect are theirs")
	reset := flag.Bool("reset", false, "close each connection with a RST (no TIME_WAIT: a storm does not run out of ports)")
	allowFail := flag.Bool("allow-fail", false, "exit 0 even when connections fail")
	flag.Parse()

	c := conversation{addr: *addr, timeout: *timeout, requests: *requests, send: *send, expect: *expect, hold: *hold, reset: *reset}
	if *asHTTP {
		c.payload, c.send, c.expect = []byte(httpRequest), len(httpRequest), len(httpResponse)
	}
	r := result{Errors: []string{}}
	var mu sync.Mutex
	seen := map[string]bool{}
	var wg sync.WaitGroup
	start := time.Now()
	workers := max(1, min(*parallel, *count))
	for w := range workers {
		n := *count / workers
		if w < *count%workers {
			n++
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range n {
				sent, recv, err := c.run()
				mu.Lock()
				r.Sent += sent
				r.Received += recv
				if err != nil {
					r.Failed++
					if msg := describe(err); !seen[msg] {
						seen[msg] = true
						r.Errors = append(r.Errors, msg)
					}
				} else {
					r.OK++
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	r.Seconds = time.Since(start).Seconds()
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
	if r.Failed > 0 && !*allowFail {
		os.Exit(1)
	}
}

// What -http sends and expects, byte for byte (tcpserver -http answers it).
const (
	httpRequest  = "GET /storm HTTP/1.1\r\nHost: storm\r\n\r\n"
	httpResponse = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
)

type conversation struct {
	payload                []byte // what each request is (zeros when nil)
	addr                   string
	timeout, hold          time.Duration
	requests, send, expect int
	reset                  bool
}

func (cv conversation) run() (sent, recv int64, err error) {
	c, err := net.DialTimeout("tcp", cv.addr, cv.timeout)
	if err != nil {
		return 0, 0, err
	}
	defer func() {
		if cv.reset {
			c.(*net.TCPConn).SetLinger(0)
		}
		c.Close()
	}()
	req, resp := make([]byte, cv.send), make([]byte, cv.expect)
	copy(req, cv.payload)
	for i := 0; i < cv.requests; i++ {
		if i > 0 {
			time.Sleep(cv.hold)
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
