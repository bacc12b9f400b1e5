// Command pingpong measures what one HTTP exchange costs the calls that make
// it, with no scheduler and no veth in the way: one thread, one loopback TCP
// connection, and per exchange the four calls a client and a
// server make (client write, server read, server writev, client read), with
// the bytes of a small request and response. It prints the wall-clock ns
// per exchange of each round, one per line.
//
// The agent's capture hooks those very calls, so the difference between
// runs with and without it is what capture costs an exchange, side effects
// of its user-memory reads on caches and TLBs included, which bpf_stats
// (time inside the programs) leaves out.
package main

import (
	"flag"
	"fmt"
	"log"
	"net"
	"os"
	"runtime"
	"syscall"
	"time"
	"unsafe"
)

const (
	request  = "GET /pingpong HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: pingpong\r\n\r\n"
	head     = "HTTP/1.1 200 OK\r\nServer: pingpong\r\nContent-Type: text/plain\r\nContent-Length: 3\r\n\r\n"
	body     = "ok\n"
	perCheck = 256 // exchanges between clock reads
)

func main() {
	rounds := flag.Int("rounds", 5, "rounds")
	round := flag.Duration("round", time.Second, "length of a round")
	flag.Parse()
	runtime.LockOSThread()
	client, server, err := pair()
	if err != nil {
		log.Fatal(err)
	}
	buf := make([]byte, 8192)
	iov := []syscall.Iovec{iovec(head), iovec(body)}
	for range *rounds {
		n, start := 0, time.Now()
		for time.Since(start) < *round {
			for range perCheck {
				if err := exchange(client, server, buf, iov); err != nil {
					log.Fatal(err)
				}
			}
			n += perCheck
		}
		fmt.Printf("%.0f\n", float64(time.Since(start).Nanoseconds())/float64(n))
	}
}

// exchange is one request and its response, each call checked for its size:
// a short read or write would make the rounds incomparable.
func exchange(client, server int, buf []byte, iov []syscall.Iovec) error {
	if n, err := syscall.Write(client, []byte(request)); err != nil || n != len(request) {
		return fmt.Errorf("client write: %d, %v", n, err)
	}
	if n, err := syscall.Read(server, buf); err != nil || n != len(request) {
		return fmt.Errorf("server read: %d, %v", n, err)
	}
	if n, _, errno := syscall.Syscall(syscall.SYS_WRITEV, uintptr(server), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov))); errno != 0 || int(n) != len(head)+len(body) {
		return fmt.Errorf("server writev: %d, %v", n, errno)
	}
	if n, err := syscall.Read(client, buf); err != nil || n != len(head)+len(body) {
		return fmt.Errorf("client read: %d, %v", n, err)
	}
	return nil
}

// pair is a connected loopback TCP pair of blocking sockets, Nagle off.
func pair() (client, server int, err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, 0, err
	}
	defer ln.Close()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		return 0, 0, err
	}
	s, err := ln.Accept()
	if err != nil {
		return 0, 0, err
	}
	if client, err = blockingFD(c.(*net.TCPConn)); err != nil {
		return 0, 0, err
	}
	if server, err = blockingFD(s.(*net.TCPConn)); err != nil {
		return 0, 0, err
	}
	return client, server, nil
}

// files keeps the descriptors' files open for the life of the process.
var files []*os.File

// blockingFD is a descriptor of c in blocking mode, so that the loop makes
// plain system calls, the runtime's poller out of it.
func blockingFD(c *net.TCPConn) (int, error) {
	if err := c.SetNoDelay(true); err != nil {
		return 0, err
	}
	f, err := c.File() // a duplicate descriptor
	if err != nil {
		return 0, err
	}
	files = append(files, f)
	fd := int(f.Fd()) // Fd puts it in blocking mode
	return fd, syscall.SetNonblock(fd, false)
}

func iovec(s string) syscall.Iovec {
	b := []byte(s)
	v := syscall.Iovec{Base: &b[0]}
	v.SetLen(len(b))
	return v
}
