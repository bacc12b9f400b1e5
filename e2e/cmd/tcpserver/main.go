// Command tcpserver is a test peer: for every request of -request bytes it
// answers -reply bytes, until the client closes; with -reset it aborts each
// connection with a RST after the first request.
package main

import (
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	addr := flag.String("listen", ":8080", "address to listen on")
	request := flag.Int("request", 100, "bytes per request")
	reply := flag.Int("reply", 100, "bytes per reply")
	asHTTP := flag.Bool("http", false, "answer tcpclient -http's GET with its HTTP response (-request and -reply are theirs)")
	reset := flag.Bool("reset", false, "abort every connection with a RST after its first request")
	flag.Parse()

	var payload []byte
	if *asHTTP {
		*request, *reply, payload = len(httpRequest), len(httpResponse), []byte(httpResponse)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("listening", ln.Addr())
	go func() {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
		<-sig
		os.Exit(0)
	}()
	for {
		c, err := ln.Accept()
		if err != nil {
			log.Fatal(err)
		}
		go serve(c.(*net.TCPConn), *request, *reply, payload, *reset)
	}
}

// What -http reads and answers, byte for byte (tcpclient -http sends it).
const (
	httpRequest  = "GET /storm HTTP/1.1\r\nHost: storm\r\n\r\n"
	httpResponse = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nok\n"
)

func serve(c *net.TCPConn, request, reply int, payload []byte, reset bool) {
	defer c.Close()
	req, resp := make([]byte, request), make([]byte, reply)
	copy(resp, payload)
	for {
		if _, err := io.ReadFull(c, req); err != nil {
			return // EOF: the client is done
		}
		if reset {
			c.SetLinger(0)
			return
		}
		if _, err := c.Write(resp); err != nil {
			return
		}
	}
}
