package http

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"runtime"
	"syscall"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/stratanet/strata/probes/event"
)

// A client that reads its response before its request's send has returned:
// sock_send_length fires only when the call returns, and by then the
// response may be in (a sender preempted after its data left; Go's client,
// whose reader runs on another thread). Here it is forced: the request's
// body is far larger than both ends' buffers and the server drains it only
// once the client holds the answer, so the blocking write returns after the
// read. The exchange still pairs, and so do the socket's later ones. A
// response read before a request was written at all answers nothing seen:
// it stays alone, and the next request pairs with its own response.
func TestResponseBeforeSendReturns(t *testing.T) {
	eachMode(t, func(t *testing.T, records func(port uint16) []event.HTTP) {
		const body, buffers = 8 << 20, 64 << 10
		lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
			return c.Control(func(fd uintptr) { unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, buffers) })
		}}
		ln, err := lc.Listen(t.Context(), "tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		port := ln.Addr().(*net.TCPAddr).Port
		answered, drained := make(chan struct{}), make(chan struct{})
		served := make(chan error, 1)
		go func() { served <- serveEarly(ln, body, answered, drained) }()

		// An answer to nothing, then a request of its own.
		c := dialBlocking(t, port, buffers)
		readHead(t, c)
		writeAll(t, c, []byte("GET /next HTTP/1.1\r\nHost: x\r\n\r\n"))
		readHead(t, c)
		unix.Close(c)

		// The request whose send returns after its response was read.
		c = dialBlocking(t, port, buffers)
		defer unix.Close(c)
		req := append([]byte(fmt.Sprintf("POST /upload HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n", body)), make([]byte, body)...)
		sent := make(chan int, 1)
		go func() {
			// Blocking: returns once every byte is queued, unless a signal
			// comes first (Go's own, to preempt or to scan stacks: this
			// 8 MiB allocation may start a GC), which ends the write with
			// part of the request (seen on 6.12, once in 100 runs). The
			// write's thread blocks them; locked and never unlocked, it
			// ends with the goroutine, mask and all.
			runtime.LockOSThread()
			all := unix.Sigset_t{Val: [16]uint64{^uint64(0)}}
			if err := unix.PthreadSigmask(unix.SIG_BLOCK, &all, nil); err != nil {
				t.Errorf("block signals: %v", err)
			}
			n, _ := unix.Write(c, req)
			sent <- n
		}()
		readHead(t, c)
		close(answered)
		if n := <-sent; n != len(req) {
			t.Fatalf("the request's write returned %d of %d bytes (interrupted?)", n, len(req))
		}
		// The next request starts a read of its own, not the body's last.
		<-drained
		for i := 0; i < 3; i++ {
			writeAll(t, c, []byte(fmt.Sprintf("GET /after/%d HTTP/1.1\r\nHost: x\r\n\r\n", i)))
			readHead(t, c)
		}
		unix.Close(c)
		if err := <-served; err != nil {
			t.Fatal(err)
		}

		evs := records(uint16(port))
		got := tally(evs, uint16(port))
		want := map[string]int{"client sent request": 5, "server received request": 5,
			"server sent response": 6, "client received response": 6}
		for k, v := range want {
			if got[k] != v {
				t.Errorf("%s: %d, want %d (all: %v)", k, got[k], v, got)
			}
		}
		wantSeen := "/after/0 /after/0 /after/1 /after/1 /after/2 /after/2 /next /next /upload /upload 200 200 200 200 200 200 200 200 201 201 204 204"
		if pairing(t) {
			// Every request paired in the kernel at both ends; the answer
			// to nothing alone at both.
			wantSeen = "/after/0=200 /after/0=200 /after/1=200 /after/1=200 /after/2=200 /after/2=200 /next=204 /next=204 /upload=201 /upload=201 200 200"
		}
		if seen := outcomes(evs); seen != wantSeen {
			t.Errorf("records %q\nwant      %q", seen, wantSeen)
		}
		if t.Failed() {
			logRecords(t, evs)
		}
	})
}

// serveEarly answers the first connection before it asks anything, then
// its request; the second's upload as soon as its head is in, draining the
// body only once answered is closed (then closing drained), then three more
// requests.
func serveEarly(ln net.Listener, body int, answered <-chan struct{}, drained chan<- struct{}) error {
	c, err := ln.Accept()
	if err != nil {
		return err
	}
	c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	r := bufio.NewReader(c)
	if err := skipHead(r); err != nil {
		return err
	}
	c.Write([]byte("HTTP/1.1 204 No Content\r\n\r\n"))
	c.Close()

	if c, err = ln.Accept(); err != nil {
		return err
	}
	defer c.Close()
	r = bufio.NewReader(c)
	if err := skipHead(r); err != nil {
		return err
	}
	c.Write([]byte("HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"))
	<-answered
	_, err = io.CopyN(io.Discard, r, int64(body))
	close(drained)
	if err != nil {
		return fmt.Errorf("drain the upload: %w", err)
	}
	for i := 0; i < 3; i++ {
		if err := skipHead(r); err != nil {
			return err
		}
		c.Write([]byte("HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"))
	}
	return nil
}

// skipHead reads a request's head, up to its empty line.
func skipHead(r *bufio.Reader) error {
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return err
		}
		if line == "\r\n" {
			return nil
		}
	}
}

// dialBlocking connects a blocking socket (Go's own are not: its writes
// return as soon as the buffer is full) with a small send buffer.
func dialBlocking(t *testing.T, port, sndbuf int) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, sndbuf)
	if err := unix.Connect(fd, &unix.SockaddrInet4{Port: port, Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		unix.Close(fd)
		t.Fatal(err)
	}
	return fd
}

func writeAll(t *testing.T, fd int, b []byte) {
	t.Helper()
	if n, err := unix.Write(fd, b); n != len(b) {
		t.Fatalf("write: %d of %d bytes: %v", n, len(b), err)
	}
}

// readHead reads a response's head (each of these responses has no body)
// in as few reads as it arrives in.
func readHead(t *testing.T, fd int) {
	t.Helper()
	var got []byte
	buf := make([]byte, 256)
	for !bytes.HasSuffix(got, []byte("\r\n\r\n")) {
		n, err := unix.Read(fd, buf)
		if n <= 0 {
			t.Fatalf("read a response: %d, %v (so far %q)", n, err, got)
		}
		got = append(got, buf[:n]...)
	}
}
