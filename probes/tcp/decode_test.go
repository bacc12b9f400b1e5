package tcp

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/stratanet/strata/probes/event"
	"github.com/stratanet/strata/probes/fields"
	"github.com/stratanet/strata/probes/kind"
)

func encode(t *testing.T, r record) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := binary.Write(&b, binary.NativeEndian, r); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func v4(a string) [16]uint8 {
	var out [16]uint8
	ip := netip.MustParseAddr(a).As4()
	copy(out[:], ip[:])
	return out
}

func TestDecodeConnect(t *testing.T) {
	r := record{Kind: uint8(event.Connect), Sk: 0xffff1, Netns: 4026531840, Pid: 42,
		Family: fields.AFInet, Sport: 40000, Dport: 80, Saddr: v4("10.244.0.2"), Daddr: v4("10.250.0.9"),
		Newstate: event.StateEstablished, BytesAcked: 1, SrttUs: 120}
	copy(r.Comm[:], []int8{'c', 'u', 'r', 'l'})
	e, err := Decode(encode(t, r))
	if err != nil {
		t.Fatal(err)
	}
	want := event.TCP{Kind: event.Connect, Sock: 0xffff1, Netns: 4026531840, PID: 42, Comm: "curl",
		Local: netip.MustParseAddrPort("10.244.0.2:40000"), Remote: netip.MustParseAddrPort("10.250.0.9:80"),
		State: event.StateEstablished,
		// The SYN stays in: it is the socket's baseline, never traffic.
		Counters: event.Counters{SentBytes: 1, SRTT: 120 * time.Microsecond}}
	if e != want {
		t.Fatalf("got  %+v\nwant %+v", e, want)
	}
}

func TestDecodeIPv6AndMapped(t *testing.T) {
	var a6 [16]uint8
	copy(a6[:], netip.MustParseAddr("fd00::1").AsSlice())
	mapped := netip.MustParseAddr("::ffff:10.0.0.1").As16()
	r := record{Kind: uint8(event.Accept), Family: fields.AFInet6, Saddr: a6, Daddr: mapped, Sport: 443, Dport: 5555}
	e, err := Decode(encode(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if e.Local != netip.MustParseAddrPort("[fd00::1]:443") || e.Remote != netip.MustParseAddrPort("10.0.0.1:5555") {
		t.Fatalf("got %v -> %v", e.Local, e.Remote)
	}
}

// The kernel counts FINs in sequence space; the decoder must hand out
// application bytes only.
func TestPayloadTakesOutFINs(t *testing.T) {
	cases := []struct {
		name       string
		r          record
		sent, recv uint64
	}{
		{"active close, both FINs acked",
			record{Kind: uint8(event.Close), Oldstate: event.StateFinWait2, BytesAcked: 101, BytesReceived: 201,
				SndUna: 500, WriteSeq: 500, FinReceived: 1}, 100, 200},
		{"passive close via LAST_ACK",
			record{Kind: uint8(event.Close), Oldstate: event.StateLastAck, BytesAcked: 201, BytesReceived: 101,
				SndUna: 9, WriteSeq: 9, FinReceived: 1}, 200, 100},
		{"our FIN sent but never acked",
			record{Kind: uint8(event.Close), Oldstate: event.StateFinWait1, BytesAcked: 100, BytesReceived: 0,
				SndUna: 8, WriteSeq: 9}, 100, 0},
		{"reset while established: no FIN either way",
			record{Kind: uint8(event.Close), Oldstate: event.StateEstablished, BytesAcked: 100, BytesReceived: 50,
				SndUna: 9, WriteSeq: 9}, 100, 50},
		{"snapshot in CLOSE_WAIT: peer FIN in",
			record{Kind: uint8(event.Snapshot), Newstate: event.StateCloseWait, BytesAcked: 70, BytesReceived: 31,
				SndUna: 1, WriteSeq: 1, FinReceived: 1}, 70, 30},
		{"snapshot established",
			record{Kind: uint8(event.Snapshot), Newstate: event.StateEstablished, BytesAcked: 70, BytesReceived: 31,
				SndUna: 1, WriteSeq: 1}, 70, 31},
		{"empty connection closed cleanly",
			record{Kind: uint8(event.Close), Oldstate: event.StateFinWait2, BytesAcked: 1, BytesReceived: 1,
				SndUna: 3, WriteSeq: 3, FinReceived: 1}, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.r.Family = fields.AFInet
			got := payload(&c.r, event.Kind(c.r.Kind))
			if got.SentBytes != c.sent || got.ReceivedBytes != c.recv {
				t.Fatalf("sent/received = %d/%d, want %d/%d", got.SentBytes, got.ReceivedBytes, c.sent, c.recv)
			}
		})
	}
}

func TestDecodeConnectFailed(t *testing.T) {
	r := record{Kind: uint8(event.ConnectFailed), Family: fields.AFInet, Err: int32(syscall.ECONNREFUSED)}
	e, err := Decode(encode(t, r))
	if err != nil || e.Err != syscall.ECONNREFUSED {
		t.Fatalf("got %v, %v", e.Err, err)
	}
}

func TestDecodeRejectsGarbage(t *testing.T) {
	if _, err := Decode(make([]byte, recordSize-1)); err == nil {
		t.Fatal("short record decoded")
	}
	for _, bad := range []record{
		{Kind: 0, Family: fields.AFInet},
		{Kind: 200, Family: fields.AFInet},
		{Kind: uint8(event.Connect), Family: 1}, // AF_UNIX: not ours
	} {
		if e, err := Decode(encode(t, bad)); err == nil {
			t.Fatalf("decoded %+v from garbage", e)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(make([]byte, recordSize))
	f.Add(bytes.Repeat([]byte{0xff}, recordSize+3))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err == nil && e.Kind != event.SweepEnd && !e.Local.IsValid() {
			t.Fatalf("accepted record without a valid address: %+v", e)
		}
	})
}

// Every kind of TCP record the probes write (probes/kind, generated from
// ring.h) has its event kind and name, and no other kind has one.
func TestEveryTCPKindIsNamed(t *testing.T) {
	for k := uint8(0); k < 255; k++ {
		named := k != 0 && event.Kind(k).String() != "unknown"
		if named != kind.IsTCP(k) {
			t.Errorf("kind %d: named %v, a TCP record kind %v", k, named, kind.IsTCP(k))
		}
	}
}
