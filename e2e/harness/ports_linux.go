package harness

import (
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"sync"
)

// Ports come from below the kernel's ephemeral range and are never handed
// out twice in one test binary. A port taken from bind(":0") and closed is
// only free until someone else asks: a backend that starts minutes after its
// port was chosen (outage tests) found it taken by the agent's own listener
// or by some client's outgoing connection, which draws from the same range.
var ports struct {
	sync.Mutex
	given map[int]bool
}

const portFloor = 20000

// FreeAddr is a free 127.0.0.1 port that no other caller in this process
// was given and no outgoing connection will take.
func FreeAddr(t interface{ Fatalf(string, ...any) }) string {
	ports.Lock()
	defer ports.Unlock()
	if ports.given == nil {
		ports.given = map[int]bool{}
	}
	top := ephemeralLow()
	if top-portFloor < 1000 {
		t.Fatalf("ip_local_port_range starts at %d: no room for test ports in [%d, %d)", top, portFloor, top)
	}
	start := portFloor + rand.IntN(top-portFloor)
	for i := range top - portFloor {
		p := portFloor + (start-portFloor+i)%(top-portFloor)
		if ports.given[p] {
			continue
		}
		ln, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p))
		if err != nil {
			continue
		}
		ln.Close()
		ports.given[p] = true
		return ln.Addr().String()
	}
	t.Fatalf("no free port in [%d, %d)", portFloor, top)
	return ""
}

// ephemeralLow is the first port the kernel hands to bind(0) and connect.
func ephemeralLow() int {
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &low)
	}
	return low
}
