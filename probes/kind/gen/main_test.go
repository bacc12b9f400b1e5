package main

import (
	"bytes"
	"os"
	"strings"
	"testing"
)

// The committed kinds.go is what ring.h generates now: go test catches a
// stale file without clang or make generate.
func TestCommittedFileIsCurrent(t *testing.T) {
	header, err := os.ReadFile("../../include/ring.h")
	if err != nil {
		t.Fatal(err)
	}
	want, err := generate(header, "../include/ring.h")
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile("../kinds.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatal("probes/kind/kinds.go is stale: run make generate and commit")
	}
}

func TestParse(t *testing.T) {
	fams, err := parse([]byte(`
enum other { A = 7 };
enum tcp_record_kind {
	REC_CONNECT = 1, // first
	// a comment line
	REC_CONNECT_FAIL,
	REC_X
};
enum dns_record_kind {
	DNS_QUERY = 0x28,
	DNS_RESPONSE
};
`))
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range fams {
		for _, k := range f.kinds {
			got = append(got, f.name+" "+k.goName+" "+k.c+" "+k.comment+" "+string(rune('0'+k.value/10))+string(rune('0'+k.value%10)))
		}
	}
	want := []string{
		"tcp TCPConnect REC_CONNECT first 01",
		"tcp TCPConnectFail REC_CONNECT_FAIL  02",
		"tcp TCPX REC_X  03",
		"dns DNSQuery DNS_QUERY  40",
		"dns DNSResponse DNS_RESPONSE  41",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("parsed\n%s\nwant\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

// What the generator cannot read or would get wrong, it refuses.
func TestParseRefuses(t *testing.T) {
	for name, src := range map[string]string{
		"none":           `enum record { A = 1 };`,
		"empty":          "enum tcp_record_kind {\n};",
		"zero":           "enum tcp_record_kind {\n\tA = 0,\n};",
		"over a byte":    "enum tcp_record_kind {\n\tA = 256,\n};",
		"expression":     "enum tcp_record_kind {\n\tA = 1 << 2,\n};",
		"two on a line":  "enum tcp_record_kind {\n\tA = 1, B,\n};",
		"gap":            "enum tcp_record_kind {\n\tA = 1,\n\tB = 3,\n};",
		"shared value":   "enum tcp_record_kind {\n\tA = 1,\n};\nenum dns_record_kind {\n\tB = 1,\n};",
		"lowercase name": "enum tcp_record_kind {\n\ta = 1,\n};",
	} {
		if fams, err := parse([]byte(src)); err == nil {
			t.Errorf("%s: parsed %+v, want an error", name, fams)
		}
	}
}
