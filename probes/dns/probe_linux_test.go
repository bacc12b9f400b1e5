package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	mdns "github.com/miekg/dns"
	"golang.org/x/net/ipv4"
	"golang.org/x/sys/unix"

	"github.com/stratanet/strata/e2e/dnslab"
	"github.com/stratanet/strata/e2e/harness"
	"github.com/stratanet/strata/e2e/netlab"
	"github.com/stratanet/strata/probes/event"
	httpprobe "github.com/stratanet/strata/probes/http"
	"github.com/stratanet/strata/probes/netns"
	"github.com/stratanet/strata/probes/ring"
	"github.com/stratanet/strata/probes/tracepoint"
)

// capture loads the probe into a ring of the test's own and returns a
// function giving the records made so far in namespace netns.
func capture(t *testing.T, mode string) func(netns uint32) []event.DNS {
	t.Helper()
	events, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 1 << 22})
	if err != nil {
		t.Fatal(err)
	}
	p, _, err := Open(events, mode)
	if err != nil {
		t.Fatal(err)
	}
	if p.Mode() != mode {
		t.Fatalf("mode %s, want %s", p.Mode(), mode)
	}
	r, err := ring.Open(events, 10*time.Millisecond, Decode, func() []event.DNS { return make([]event.DNS, 0, 64) })
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var mu sync.Mutex
	var evs []event.DNS
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Run(ctx, func(b []event.DNS) { mu.Lock(); evs = append(evs, b...); mu.Unlock() },
			func(err error) { t.Errorf("undecodable: %v", err) })
	}()
	t.Cleanup(func() { cancel(); <-done; p.Close(); events.Close() })
	return func(netns uint32) []event.DNS {
		time.Sleep(200 * time.Millisecond) // the reader's poll
		mu.Lock()
		defer mu.Unlock()
		var out []event.DNS
		for _, e := range evs {
			if e.Netns == netns {
				out = append(out, e)
			}
		}
		return out
	}
}

// lab is a DNS server and a client namespace on one bridge, plus the
// probe's records of the client's namespace since the last call.
type lab struct {
	mode           string
	server, client *netlab.Host
	bin            string
	records        func() []event.DNS
}

const serverIP = "10.250.0.53"

func newLab(t *testing.T, mode string) *lab {
	dnslab.Require(t)
	bin := t.TempDir()
	if err := harness.Build(bin, map[string]string{"resolve": "../../e2e/cmd/resolve"}); err != nil {
		t.Fatal(err)
	}
	records := capture(t, mode)
	nl := netlab.New(t)
	// One /8: the external server and the client reach each other on-link.
	l := &lab{mode: mode, server: nl.Host("dns", serverIP+"/8"), client: nl.Host("cli", "10.244.0.2/8"), bin: bin}
	dnslab.Serve(t, l.server, dnslab.Zone{TTL: 5,
		A:     map[string]string{"api.twilio.com": "10.250.1.10"},
		CNAME: map[string]string{"www.twilio.test": "api.twilio.com"}})
	dnslab.Resolver(t, l.client, "nameserver "+serverIP, "options timeout:1 attempts:1")
	ino := l.client.NetnsInode()
	seen := 0
	l.records = func() []event.DNS {
		all := records(ino)
		out := all[seen:]
		seen = len(all)
		return out
	}
	return l
}

// run runs a command in the client namespace and returns its records.
func (l *lab) run(t *testing.T, name string, args ...string) []event.DNS {
	t.Helper()
	if out, err := l.client.Run(name, args...); err != nil {
		t.Fatalf("%s: %v\n%s", name, err, out)
	}
	return l.records()
}

// msg is what a record says: "query A api.twilio.com" or "response A
// api.twilio.com NOERROR 1" (answers).
func msg(t *testing.T, e event.DNS) string {
	t.Helper()
	var m mdns.Msg
	if err := m.Unpack(e.Msg); err != nil {
		t.Fatalf("record does not parse: %v (%+v)", err, e)
	}
	q := m.Question[0]
	s := strings.TrimSuffix(q.Name, ".") + " " + mdns.TypeToString[q.Qtype]
	if !e.Response {
		return "query " + s
	}
	return "response " + s + " " + mdns.RcodeToString[m.Rcode] + " " + string(rune('0'+len(m.Answer)))
}

func summary(t *testing.T, evs []event.DNS) []string {
	var out []string
	for _, e := range evs {
		out = append(out, msg(t, e))
	}
	return out
}

func expect(t *testing.T, evs []event.DNS, want ...string) {
	t.Helper()
	got := summary(t, evs)
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("records:\n  %s\nwant:\n  %s", strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
}

// inOrder checks the records are exactly the given query and response
// pairs, in any order, each query before its response and the queries in
// the order given.
func inOrder(t *testing.T, evs []event.DNS, pairs ...string) {
	t.Helper()
	got := summary(t, evs)
	at := map[string]int{}
	for i, g := range got {
		if _, dup := at[g]; dup {
			t.Fatalf("records %q: %s twice", got, g)
		}
		at[g] = i
	}
	last := -1
	for i := 0; i+1 < len(pairs); i += 2 {
		q, okq := at[pairs[i]]
		r, okr := at[pairs[i+1]]
		if !okq || !okr || r < q || q < last {
			t.Fatalf("records %q: want the pairs %q, each query before its response", got, pairs)
		}
		last = q
	}
	if len(got) != len(pairs) {
		t.Fatalf("records %q: want the pairs %q", got, pairs)
	}
}

// ends checks every record is the client's, to the server's port 53,
// and queries name their sender. Responses on the packet hooks come in
// softirq: they name no one (the agent takes the query's owner).
func (l *lab) ends(t *testing.T, evs []event.DNS, comm string, tcp bool) {
	t.Helper()
	server := netip.MustParseAddrPort(serverIP + ":53")
	for _, e := range evs {
		wantComm, owned := comm, true
		if e.Response && l.mode == ModeCgroupSKB {
			wantComm, owned = "", false
		}
		if e.Comm != wantComm || (e.PID != 0) != owned || e.Remote != server || e.Local.Port() == 0 || e.Local.Port() == 53 ||
			e.TCP != tcp || int(e.Size) != len(e.Msg) || e.Mono == 0 {
			t.Errorf("record %+v: want %q, %v -> %v, tcp %v", e, wantComm, e.Local, server, tcp)
		}
	}
}

var modes = []string{ModeTracepoint, ModeCgroupSKB, ModeSyscall}

// cannot says why this kernel cannot run mode, as Open's error says it;
// nil when it can.
func cannot(mode string) error {
	switch mode {
	case ModeTracepoint:
		if hook := tracepoint.MissingBTF(tracepoint.SocketHooks...); hook != "" {
			return errors.New("no " + hook + " tracepoint")
		}
	case ModeCgroupSKB:
		return PacketsSupported()
	}
	return nil
}

// refused says whether this kernel cannot run mode, after checking that
// Open then refuses it with the one-line reason the agent logs (the socket
// tracepoints came with 6.3; the packet programs need a 6.2 kernel's kfunc
// and cgroup_skb access to the current task's pid and comm).
func refused(t *testing.T, mode string) bool {
	t.Helper()
	why := cannot(mode)
	if why == nil {
		return false
	}
	events, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 1 << 12})
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	_, _, err = Open(events, mode)
	if !errors.Is(err, ebpf.ErrNotSupported) || !strings.Contains(err.Error(), why.Error()) {
		t.Fatalf("Open(%s) on a kernel that cannot run it: %v, want %q", mode, err, why)
	}
	t.Logf("refused here, as it should be: %v", err)
	return true
}

func TestRealClients(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			if refused(t, mode) {
				return
			}
			testRealClients(t, newLab(t, mode))
		})
	}
}

func testRealClients(t *testing.T, l *lab) {
	resolve := filepath.Join(l.bin, "resolve")

	t.Run("glibc send and recvfrom", func(t *testing.T) {
		evs := l.run(t, "getent", "ahostsv4", "api.twilio.com.")
		expect(t, evs, "query api.twilio.com A", "response api.twilio.com A NOERROR 1")
		l.ends(t, evs, "getent", false)
		if evs[0].Local.Addr() != netip.MustParseAddr("10.244.0.2") || evs[0].Local != evs[1].Local {
			t.Errorf("glibc connects its socket: local %v then %v", evs[0].Local, evs[1].Local)
		}
	})
	t.Run("glibc sendmmsg A and AAAA", func(t *testing.T) {
		evs := l.run(t, "getent", "ahosts", "api.twilio.com.")
		// Both queries leave in one call; the responses come in either
		// order, and the packets may see the first before the second
		// query leaves.
		inOrder(t, evs, "query api.twilio.com A", "response api.twilio.com A NOERROR 1",
			"query api.twilio.com AAAA", "response api.twilio.com AAAA NOERROR 0")
		l.ends(t, evs, "getent", false)
	})
	t.Run("glibc CNAME chain and NXDOMAIN", func(t *testing.T) {
		evs := l.run(t, "getent", "ahostsv4", "www.twilio.test.")
		expect(t, evs, "query www.twilio.test A", "response www.twilio.test A NOERROR 2")
		if _, err := l.client.Run("getent", "ahostsv4", "nope.missing.test."); err == nil {
			t.Fatal("getent found a missing name")
		}
		expect(t, l.records(), "query nope.missing.test A", "response nope.missing.test A NXDOMAIN 0")
	})
	t.Run("Go resolver write and read", func(t *testing.T) {
		evs := l.run(t, resolve, "-n", "3", "api.twilio.com.")
		expect(t, evs, "query api.twilio.com A", "response api.twilio.com A NOERROR 1",
			"query api.twilio.com A", "response api.twilio.com A NOERROR 1",
			"query api.twilio.com A", "response api.twilio.com A NOERROR 1")
		l.ends(t, evs, "resolve", false)
		for i := 0; i < len(evs); i += 2 {
			if evs[i].Local != evs[i+1].Local || binary.BigEndian.Uint16(evs[i].Msg) != binary.BigEndian.Uint16(evs[i+1].Msg) {
				t.Errorf("query %v id %x, response %v id %x", evs[i].Local, evs[i].Msg[:2], evs[i+1].Local, evs[i+1].Msg[:2])
			}
		}
	})
	t.Run("TCP with use-vc: Go and glibc", func(t *testing.T) {
		dnslab.Resolver(t, l.client, "nameserver "+serverIP, "options timeout:1 attempts:1 use-vc")
		evs := l.run(t, resolve, "api.twilio.com.")
		expect(t, evs, "query api.twilio.com A", "response api.twilio.com A NOERROR 1")
		l.ends(t, evs, "resolve", true)
		evs = l.run(t, "getent", "ahostsv4", "api.twilio.com.")
		expect(t, evs, "query api.twilio.com A", "response api.twilio.com A NOERROR 1")
		l.ends(t, evs, "getent", true)
		dnslab.Resolver(t, l.client, "nameserver "+serverIP, "options timeout:1 attempts:1")
	})
	t.Run("unanswered query", func(t *testing.T) {
		dnslab.Resolver(t, l.client, "nameserver 10.250.0.99", "options timeout:1 attempts:1")
		out, err := l.client.Run(resolve, "api.twilio.com.")
		if err == nil {
			t.Fatalf("a lookup from a silent server succeeded: %s", out)
		}
		evs := l.records()
		expect(t, evs, "query api.twilio.com A")
		if evs[0].Remote != netip.MustParseAddrPort("10.250.0.99:53") {
			t.Errorf("query to %v", evs[0].Remote)
		}
		dnslab.Resolver(t, l.client, "nameserver "+serverIP, "options timeout:1 attempts:1")
	})
}

// inClient runs fn on a thread in the client's namespace: sockets it
// makes live there.
func (l *lab) inClient(t *testing.T, fn func() error) []event.DNS {
	t.Helper()
	if err := netns.Do("/run/netns/"+l.client.NS, fn); err != nil {
		t.Fatal(err)
	}
	return l.records()
}

func query(t *testing.T, name string, id uint16) []byte {
	m := new(mdns.Msg)
	m.SetQuestion(mdns.Fqdn(name), mdns.TypeA)
	m.Id = id
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

var server4 = [4]byte{10, 250, 0, 53}

// The other ways clients move datagrams: musl's sendto and recvfrom on an
// unconnected socket, sendmsg/recvmsg, sendmmsg/recvmmsg.
func TestSocketCalls(t *testing.T) {
	for _, mode := range modes {
		t.Run(mode, func(t *testing.T) {
			if refused(t, mode) {
				return
			}
			testSocketCalls(t, newLab(t, mode))
		})
	}
}

// The packet programs share the cgroup root's programs with HTTP capture
// (TCP that is not DNS goes to it): every call still seen exactly, TCP/53
// included.
func TestSocketCallsBesideHTTP(t *testing.T) {
	if refused(t, ModeCgroupSKB) {
		return
	}
	if err := httpprobe.PacketsSupported(); err != nil {
		t.Skipf("HTTP capture has no packet mode here: %v", err)
	}
	events, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 1 << 16})
	if err != nil {
		t.Fatal(err)
	}
	defer events.Close()
	h, err := httpprobe.Open(events, httpprobe.Options{Mode: httpprobe.Packet})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	t.Run(ModeCgroupSKB, func(t *testing.T) { testSocketCalls(t, newLab(t, ModeCgroupSKB)) })
}

func testSocketCalls(t *testing.T, l *lab) {
	udp := func(connect bool) (int, error) {
		fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM, 0)
		if err != nil {
			return -1, err
		}
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
		if connect {
			return fd, unix.Connect(fd, &unix.SockaddrInet4{Addr: server4, Port: 53})
		}
		return fd, nil
	}
	buf := make([]byte, 1500)

	t.Run("unconnected sendto and recvfrom", func(t *testing.T) {
		evs := l.inClient(t, func() error {
			fd, err := udp(false)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			if err := unix.Sendto(fd, query(t, "api.twilio.com", 0x1234), 0, &unix.SockaddrInet4{Addr: server4, Port: 53}); err != nil {
				return err
			}
			_, _, err = unix.Recvfrom(fd, buf, 0)
			return err
		})
		expect(t, evs, "query api.twilio.com A", "response api.twilio.com A NOERROR 1")
		l.ends(t, evs, "dns.test", false)
		// The socket is bound to no address: the syscalls see none, the
		// packets the one the route chose.
		want := netip.IPv4Unspecified()
		if l.mode == ModeCgroupSKB {
			want = netip.MustParseAddr("10.244.0.2")
		}
		if evs[0].Local.Addr() != want || evs[0].Local != evs[1].Local {
			t.Errorf("unbound socket: local %v then %v, want %v", evs[0].Local, evs[1].Local, want)
		}
	})
	t.Run("recvfrom without asking who sent", func(t *testing.T) {
		evs := l.inClient(t, func() error {
			fd, err := udp(false)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			if err := unix.Sendto(fd, query(t, "api.twilio.com", 0x1235), 0, &unix.SockaddrInet4{Addr: server4, Port: 53}); err != nil {
				return err
			}
			_, err = unix.Read(fd, buf)
			return err
		})
		expect(t, evs, "query api.twilio.com A", "response api.twilio.com A NOERROR 1")
		l.ends(t, evs, "dns.test", false)
	})
	t.Run("sendmsg and recvmsg", func(t *testing.T) {
		evs := l.inClient(t, func() error {
			fd, err := udp(false)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			if err := unix.Sendmsg(fd, query(t, "api.twilio.com", 0x1236), nil, &unix.SockaddrInet4{Addr: server4, Port: 53}, 0); err != nil {
				return err
			}
			_, _, _, _, err = unix.Recvmsg(fd, buf, nil, 0)
			return err
		})
		expect(t, evs, "query api.twilio.com A", "response api.twilio.com A NOERROR 1")
		l.ends(t, evs, "dns.test", false)
	})
	t.Run("sendmmsg and recvmmsg", func(t *testing.T) {
		evs := l.inClient(t, func() error {
			c, err := net.ListenPacket("udp4", "0.0.0.0:0")
			if err != nil {
				return err
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(2 * time.Second))
			p := ipv4.NewPacketConn(c)
			to := &net.UDPAddr{IP: net.IP(server4[:]), Port: 53}
			out := []ipv4.Message{{Buffers: [][]byte{query(t, "api.twilio.com", 1)}, Addr: to},
				{Buffers: [][]byte{query(t, "www.twilio.test", 2)}, Addr: to}}
			if n, err := p.WriteBatch(out, 0); err != nil || n != 2 {
				return err
			}
			in := []ipv4.Message{{Buffers: [][]byte{make([]byte, 512)}}, {Buffers: [][]byte{make([]byte, 512)}}}
			got := 0
			for got < 2 {
				n, err := p.ReadBatch(in[got:], 0)
				if err != nil {
					return err
				}
				got += n
			}
			return nil
		})
		inOrder(t, evs, "query api.twilio.com A", "response api.twilio.com A NOERROR 1",
			"query www.twilio.test A", "response www.twilio.test A NOERROR 2")
		l.ends(t, evs, "dns.test", false)
	})
	t.Run("TCP: the length written alone, then the message", func(t *testing.T) {
		evs := l.inClient(t, func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1) // two segments
			unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
			if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: server4, Port: 53}); err != nil {
				return err
			}
			q := query(t, "api.twilio.com", 0x2345)
			if _, err := unix.Write(fd, []byte{byte(len(q) >> 8), byte(len(q))}); err != nil {
				return err
			}
			if _, err := unix.Write(fd, q); err != nil {
				return err
			}
			_, err = unix.Read(fd, buf)
			return err
		})
		expect(t, evs, "query api.twilio.com A", "response api.twilio.com A NOERROR 1")
		l.ends(t, evs, "dns.test", true)
	})
	t.Run("TCP: the length read into a buffer of its own (musl's recvmsg)", func(t *testing.T) {
		var n int
		evs := l.inClient(t, func() error {
			fd, err := unix.Socket(unix.AF_INET, unix.SOCK_STREAM, 0)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 2})
			if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: server4, Port: 53}); err != nil {
				return err
			}
			q := query(t, "api.twilio.com", 0x2346)
			if _, err := unix.Write(fd, append([]byte{byte(len(q) >> 8), byte(len(q))}, q...)); err != nil {
				return err
			}
			// The whole answer arrives before the read, so one call moves the
			// prefix into the first buffer and the message into the second.
			time.Sleep(100 * time.Millisecond)
			n, _, _, _, err = unix.RecvmsgBuffers(fd, [][]byte{make([]byte, 2), make([]byte, 512)}, nil, 0)
			return err
		})
		if l.mode == ModeSyscall {
			// The fallback looks at a read's first buffer only: a gap of
			// its own, not worth a second buffer read on every receive.
			expect(t, evs, "query api.twilio.com A")
			return
		}
		expect(t, evs, "query api.twilio.com A", "response api.twilio.com A NOERROR 1")
		l.ends(t, evs, "dns.test", true)
		if int(evs[1].Size) != n-2 {
			t.Errorf("response of %d bytes, the client read %d after the prefix", evs[1].Size, n-2)
		}
	})
	t.Run("not DNS: other ports, files, garbage", func(t *testing.T) {
		evs := l.inClient(t, func() error {
			fd, err := udp(false)
			if err != nil {
				return err
			}
			defer unix.Close(fd)
			// A query to another port, garbage to port 53.
			unix.Sendto(fd, query(t, "api.twilio.com", 7), 0, &unix.SockaddrInet4{Addr: server4, Port: 5353})
			unix.Sendto(fd, []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n"), 0, &unix.SockaddrInet4{Addr: server4, Port: 53})
			// A query written to a file.
			f, err := os.CreateTemp(t.TempDir(), "q")
			if err != nil {
				return err
			}
			defer f.Close()
			_, err = f.Write(query(t, "api.twilio.com", 8))
			return err
		})
		expect(t, evs)
	})
}

// Auto takes the cheapest hooks of DNS's own; PreferPackets the packets,
// which an agent with HTTP's packet capture already pays for.
func TestChoice(t *testing.T) {
	first := func(modes ...string) string {
		for _, m := range modes {
			if cannot(m) == nil {
				return m
			}
		}
		return ""
	}
	for choice, order := range map[string][]string{
		Auto:          {ModeTracepoint, ModeCgroupSKB, ModeSyscall},
		PreferPackets: {ModeCgroupSKB, ModeTracepoint, ModeSyscall},
	} {
		want := first(order...)
		events, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 1 << 12})
		if err != nil {
			t.Fatal(err)
		}
		p, fellBack, err := Open(events, choice)
		if err != nil {
			t.Fatal(err)
		}
		// Why the first choice was refused goes with a probe that fell back.
		if p.Mode() != want || (fellBack != nil) != (want != order[0]) {
			t.Errorf("Open(%q) took %s (fell back: %v), want %s", choice, p.Mode(), fellBack, want)
		}
		p.Close()
		events.Close()
	}
	if _, _, err := Open(nil, "packets"); err == nil || !strings.Contains(err.Error(), `unknown DNS probe mode "packets"`) {
		t.Errorf("Open with an unknown mode: %v", err)
	}
}
