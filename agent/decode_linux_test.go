package agent

import (
	"testing"

	"github.com/stratanet/strata/probes/kind"
)

// The dispatcher sends each record to its family's decoder by the
// generated kinds, and refuses a kind no family has.
func TestDecodeDispatchesByKind(t *testing.T) {
	for k := 0; k < 256; k++ {
		raw := make([]byte, 4096)
		raw[0] = byte(k)
		r, err := decode(raw)
		b := uint8(k)
		isDNS, isHTTP := r.DNS != nil, r.HTTP != nil || r.Tally != nil
		if isDNS != kind.IsDNS(b) || isHTTP != kind.IsHTTP(b) {
			t.Errorf("kind %d: dns %v http %v", k, isDNS, isHTTP)
		}
		if !kind.IsTCP(b) && !kind.IsHTTP(b) && !kind.IsDNS(b) && err == nil {
			t.Errorf("kind %d belongs to no family but decoded", k)
		}
	}
}
