package dns

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

// A query for api.twilio.com A, id 0x1234.
var twilioQuery = []byte{0x12, 0x34, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0,
	3, 'a', 'p', 'i', 6, 't', 'w', 'i', 'l', 'i', 'o', 3, 'c', 'o', 'm', 0, 0, 1, 0, 1}

func TestDecodeQuery(t *testing.T) {
	r := record{Kind: kind.DNSQuery, Proto: ipprotoUDP, Family: 2, Sport: 40000, Dport: 53, Pid: 9, TsNs: 5, Netns: 77,
		Size: uint32(len(twilioQuery)), Captured: uint32(len(twilioQuery))}
	copy(r.Saddr[:], []byte{10, 244, 0, 2})
	copy(r.Daddr[:], []byte{10, 250, 0, 53})
	copy(r.Data[:], twilioQuery)
	copy(r.Comm[:], []int8{'g', 'e', 't', 'e', 'n', 't'})
	e, err := Decode(encode(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if e.Response || e.TCP || e.Comm != "getent" || e.PID != 9 || e.Netns != 77 || e.Mono != 5 || e.Size != 32 ||
		!bytes.Equal(e.Msg, twilioQuery) ||
		e.Local != netip.MustParseAddrPort("10.244.0.2:40000") || e.Remote != netip.MustParseAddrPort("10.250.0.53:53") {
		t.Fatalf("%+v", e)
	}
}

func TestDecodeResponseIPv6TCP(t *testing.T) {
	r := record{Kind: kind.DNSResponse, Proto: ipprotoTCP, Family: 10, Sport: 40000, Dport: 53,
		Size: 600, Captured: 512} // a message longer than what was kept
	copy(r.Saddr[:], netip.MustParseAddr("fd00::2").AsSlice())
	copy(r.Daddr[:], netip.MustParseAddr("::ffff:10.250.0.53").AsSlice())
	copy(r.Data[:], twilioQuery)
	e, err := Decode(encode(t, r))
	if err != nil {
		t.Fatal(err)
	}
	if !e.Response || !e.TCP || len(e.Msg) != 512 || e.Size != 600 ||
		e.Local != netip.MustParseAddrPort("[fd00::2]:40000") || e.Remote != netip.MustParseAddrPort("10.250.0.53:53") {
		t.Fatalf("%+v", e)
	}
}

func TestDecodeRejects(t *testing.T) {
	good := record{Kind: kind.DNSQuery, Proto: ipprotoUDP, Family: 2, Size: 32, Captured: 32}
	for name, r := range map[string]record{
		"kind":     {Kind: kind.DNSResponse + 1, Proto: ipprotoUDP, Family: 2, Size: 32, Captured: 32},
		"http":     {Kind: 33, Proto: ipprotoUDP, Family: 2, Size: 32, Captured: 32},
		"proto":    {Kind: kind.DNSQuery, Proto: 1, Family: 2, Size: 32, Captured: 32},
		"family":   {Kind: kind.DNSQuery, Proto: ipprotoUDP, Family: 1, Size: 32, Captured: 32},
		"captured": {Kind: kind.DNSQuery, Proto: ipprotoUDP, Family: 2, Size: 32, Captured: 11},
		"size":     {Kind: kind.DNSQuery, Proto: ipprotoUDP, Family: 2, Size: 3, Captured: 32},
	} {
		if _, err := Decode(encode(t, r)); err == nil {
			t.Errorf("%s: decoded", name)
		}
	}
	if _, err := Decode(encode(t, good)[:recordSize-1]); err == nil {
		t.Error("short record decoded")
	}
	if _, err := Decode(encode(t, good)); err != nil {
		t.Errorf("good record: %v", err)
	}
}

// A captured length beyond the buffer is clamped, never trusted.
func TestDecodeClampsCaptured(t *testing.T) {
	r := record{Kind: kind.DNSQuery, Proto: ipprotoUDP, Family: 2, Size: 1 << 31, Captured: 1 << 31}
	e, err := Decode(encode(t, r))
	if err != nil || len(e.Msg) != len(r.Data) {
		t.Fatalf("%d bytes, %v", len(e.Msg), err)
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(make([]byte, recordSize))
	good := record{Kind: kind.DNSResponse, Proto: ipprotoUDP, Family: 10, Size: 32, Captured: 32}
	copy(good.Data[:], twilioQuery)
	f.Add(encode(f, good))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := Decode(b)
		if err != nil {
			return
		}
		if len(e.Msg) < 12 || len(e.Msg) > 512 || uint32(len(e.Msg)) > e.Size {
			t.Fatalf("message of %d bytes (size %d)", len(e.Msg), e.Size)
		}
		if !e.Local.IsValid() || !e.Remote.IsValid() {
			t.Fatalf("addresses %v %v", e.Local, e.Remote)
		}
	})
}
