package http

import (
	"bufio"
	"fmt"
	"net"
	nethttp "net/http"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/stratanet/strata/probes/event"
)

// A request belongs to the process that made its call, also when another
// process makes calls on the same connection in between: the socket keeps
// the last request's thread and addresses only while they still match.
func TestRequestOwnerFollowsTheCaller(t *testing.T) {
	sh, err := exec.LookPath("sh")
	if err != nil {
		t.Fatal(err)
	}
	eachMode(t, func(t *testing.T, records func(port uint16) []event.HTTP) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		port := uint16(ln.Addr().(*net.TCPAddr).Port)
		srv := &nethttp.Server{Handler: nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {})}
		go srv.Serve(ln)
		defer srv.Close()
		c, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		f, err := c.(*net.TCPConn).File()
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		r := bufio.NewReader(c)
		exchange := func(path string, send func() error) {
			t.Helper()
			if err := send(); err != nil {
				t.Fatal(err)
			}
			resp, err := nethttp.ReadResponse(r, nil)
			if err != nil || resp.StatusCode != 200 {
				t.Fatalf("%s: %v %v", path, resp, err)
			}
			resp.Body.Close()
		}
		mine := func(path string) func() error {
			return func() error {
				_, err := fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", path)
				return err
			}
		}
		var child int
		exchange("/one", mine("/one"))
		exchange("/two", func() error { // from sh, on the same connection
			cmd := exec.Command(sh, "-c", `printf 'GET /two HTTP/1.1\r\nHost: x\r\n\r\n' >&3`)
			cmd.ExtraFiles = []*os.File{f}
			err := cmd.Run()
			child = cmd.ProcessState.Pid()
			return err
		})
		exchange("/three", mine("/three"))

		want := map[string]string{"/one": fmt.Sprint("http.test/", os.Getpid()), "/two": fmt.Sprint("sh/", child),
			"/three": fmt.Sprint("http.test/", os.Getpid())}
		if strings.HasSuffix(t.Name(), "/"+string(Packet)) {
			// Packets name the socket's owner, who connected it: a packet
			// may leave from softirq, in anyone's context.
			want["/two"] = fmt.Sprint("http.test/", os.Getpid())
		}
		got := map[string]string{}
		for _, e := range records(port) {
			if !e.Response && !e.Received { // the client's requests
				got[e.Path] += fmt.Sprintf("%s/%d", e.Comm, e.PID)
			}
		}
		for path, owner := range want {
			if got[path] != owner {
				t.Errorf("%s owned by %q, want %q (all: %v)", path, got[path], owner, got)
			}
		}
		if len(got) != len(want) {
			t.Errorf("client requests %v, want %v", got, want)
		}
	})
}
