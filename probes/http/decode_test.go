package http

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/stratanet/strata/probes/kind"
)

func encode(t testing.TB, r record) []byte {
	var b bytes.Buffer
	if err := binary.Write(&b, binary.NativeEndian, r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func TestDecodeRequestRecord(t *testing.T) {
	r := record{Kind: kind.HTTPRequest, Dir: 1, Family: 2, Sport: 8080, Dport: 40000, Sk: 7, Pid: 9, TsNs: 5}
	copy(r.Saddr[:], []byte{10, 244, 0, 3})
	copy(r.Daddr[:], []byte{10, 244, 0, 2})
	head := "GET /users/7?q=1 HTTP/1.1\r\ntraceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\n\r\n"
	copy(r.Data[:], head)
	r.Captured = uint32(len(head))
	copy(r.Comm[:], []int8{'n', 'g', 'i', 'n', 'x'})
	e, err := Decode(encode(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if !e.Valid || e.Response || !e.Received || e.Method != "GET" || e.Path != "/users/7" || e.Comm != "nginx" ||
		e.Traceparent != "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01" ||
		e.Local != netip.MustParseAddrPort("10.244.0.3:8080") || e.Remote != netip.MustParseAddrPort("10.244.0.2:40000") {
		t.Fatalf("%+v", e)
	}
}

// A request paired with its response in the kernel, and one whose
// connection closed first.
func TestDecodePairedRecords(t *testing.T) {
	r := record{Kind: kind.HTTPExchange, Dir: 0, Family: 2, Sport: 40000, Dport: 80, Sk: 7, Pid: 9, TsNs: 5, EndNs: 25, HeadLen: 16}
	copy(r.Saddr[:], []byte{10, 244, 0, 2})
	copy(r.Daddr[:], []byte{10, 250, 0, 9})
	head := "POST /api/users/42 HTTP/1.1\r\n"
	r.Captured = uint32(copy(r.Data[:], head))
	copy(r.Head[:], "HTTP/1.1 503 Service Unavailable")
	e, err := Decode(encode(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if !e.Valid || e.Response || e.Received || e.Method != "POST" || e.Path != "/api/users/42" || e.Status != 503 ||
		e.Mono != 5 || e.Ended != 25 || e.Remote != netip.MustParseAddrPort("10.250.0.9:80") {
		t.Fatalf("%+v", e)
	}
	// The kernel cuts a paired record after its captured bytes.
	raw := encode(t, r)
	if e2, err := Decode(raw[:headerSize+len(head)]); err != nil || e2 != e {
		t.Fatalf("cut after the captured bytes: %+v %v, want %+v", e2, err, e)
	}
	if _, err := Decode(raw[:headerSize+len(head)-1]); err == nil {
		t.Fatal("a record shorter than its captured bytes decoded")
	}
	r.Kind, r.HeadLen, r.Head = kind.HTTPUnanswered, 0, [16]byte{}
	if e, err = Decode(encode(t, r)); err != nil || !e.Valid || e.Status != 0 || e.Ended != 25 || e.Method != "POST" {
		t.Fatalf("unanswered: %+v %v", e, err)
	}
	r.Kind, r.HeadLen = kind.HTTPExchange, 4
	copy(r.Head[:], "\x16\x03\x01\x00")
	if e, err = Decode(encode(t, r)); err != nil || e.Valid {
		t.Fatalf("a response head that is not HTTP paired as valid: %+v %v", e, err)
	}
}

func TestDecodeRejects(t *testing.T) {
	if _, err := Decode(make([]byte, headerSize-1)); err == nil {
		t.Fatal("short record decoded")
	}
	if _, err := Decode(encode(t, record{Kind: kind.HTTPTally, Family: 2})); err == nil {
		t.Fatal("unknown kind decoded")
	}
	if _, err := Decode(encode(t, record{Kind: kind.HTTPExchange, Family: 2})); err == nil {
		t.Fatal("a paired request without an end decoded")
	}
	r := record{Kind: kind.HTTPResponse, Family: 2, HeadLen: 4}
	copy(r.Head[:], "\x16\x03\x01\x00")
	if e, err := Decode(encode(t, r)); err != nil || e.Valid {
		t.Fatalf("TLS bytes decoded as a valid response: %+v %v", e, err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(make([]byte, recordSize))
	good := record{Kind: kind.HTTPResponse, Family: 10, HeadLen: 16}
	copy(good.Head[:], "HTTP/1.1 200 OK\r\n")
	f.Add(encode(f, good))
	pair := record{Kind: kind.HTTPExchange, Family: 2, HeadLen: 16, Captured: 16, TsNs: 1, EndNs: 2}
	copy(pair.Head[:], "HTTP/1.1 404 Not")
	copy(pair.Data[:], "GET / HTTP/1.1\r\n")
	f.Add(encode(f, pair))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		if e.Valid && (e.Response || e.Ended != 0) && e.Status != 0 && (e.Status < 100 || e.Status > 599) {
			t.Fatalf("status %d", e.Status)
		}
		if e.Valid && e.Response && e.Status == 0 {
			t.Fatalf("status %d", e.Status)
		}
		if e.Valid && !e.Response && (e.Method == "" || e.Path == "") {
			t.Fatalf("request without method or path: %+v", e)
		}
	})
}

// BenchmarkDecodeExchange is the agent's cost to read one paired record as
// wrk against nginx produces them.
func BenchmarkDecodeExchange(b *testing.B) {
	r := record{Kind: kind.HTTPExchange, Dir: 1, Family: 2, Sport: 8080, Dport: 40000, Sk: 7, Pid: 9, TsNs: 5, EndNs: 25}
	copy(r.Saddr[:], []byte{10, 244, 0, 3})
	copy(r.Daddr[:], []byte{10, 244, 0, 2})
	head := "GET / HTTP/1.1\r\nHost: 10.244.0.3:8080\r\n\r\n"
	r.Captured = uint32(copy(r.Data[:], head))
	r.HeadLen = uint16(copy(r.Head[:], "HTTP/1.1 200 OK\r"))
	copy(r.Comm[:], []int8{'n', 'g', 'i', 'n', 'x'})
	raw := encode(b, r)[:headerSize+len(head)] // the kernel cuts it after the captured bytes
	b.ReportAllocs()
	for b.Loop() {
		if e, err := Decode(raw); err != nil || e.Status != 200 {
			b.Fatal(e, err)
		}
	}
}

func TestDecodeTally(t *testing.T) {
	var r tallyRecord
	r.Kind, r.Final, r.Sk, r.Cookie, r.Sport, r.Dport = kind.HTTPTally, 1, 7, 99, 80, 40000
	r.Slots[2].Key, r.Slots[2].Status, r.Slots[2].SumNs = 5, 404, 3e6
	r.Slots[2].Counts[3], r.Slots[2].Counts[17] = 2, 1
	var buf bytes.Buffer
	binary.Write(&buf, binary.NativeEndian, r)
	raw := buf.Bytes()
	c, err := DecodeTally(raw)
	if err != nil {
		t.Fatal(err)
	}
	s := c.Slots[2]
	if c.Sock != 7 || c.Cookie != 99 || !c.Final || c.Local != 80 || c.Remote != 40000 ||
		!s.Used || s.Status != 404 || s.Sum != 3e6 || s.Total() != 3 || s.Counts[17] != 1 || c.Slots[0].Used {
		t.Fatalf("decoded %+v", c)
	}
	if _, err := DecodeTally(raw[:len(raw)-1]); err == nil {
		t.Fatal("a short tally record decoded")
	}
}

// Any bytes: a tally or an error, never a panic, and never a record of
// another kind taken for a tally.
func FuzzDecodeTally(f *testing.F) {
	var r tallyRecord
	r.Kind = kind.HTTPTally
	r.Slots[0].Key, r.Slots[0].Counts[0] = 1, 3
	var buf bytes.Buffer
	binary.Write(&buf, binary.NativeEndian, r)
	f.Add(buf.Bytes())
	f.Add(encode(f, record{Kind: kind.HTTPExchange}))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := DecodeTally(b); err == nil && b[0] != kind.HTTPTally {
			t.Fatalf("kind %d decoded as a tally", b[0])
		}
	})
}
