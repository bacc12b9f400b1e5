package event

import (
	"testing"

	"github.com/stratanet/strata/probes/kind"
)

// Every kind of TCP record the probes write has its event kind and name.
func TestEveryTCPKindIsNamed(t *testing.T) {
	for k := uint8(0); k < 255; k++ {
		named := Kind(k).String() != "unknown" && k != 0
		if named != kind.IsTCP(k) {
			t.Errorf("kind %d: named %v, a TCP record kind %v", k, named, kind.IsTCP(k))
		}
	}
}
