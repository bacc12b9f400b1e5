// Command dnshook attaches the DNS probe in the mode given until it is
// stopped, its records dropped: the benchmark's way to set DNS's hooks side
// by side, each beside an agent with DNS capture off.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"os/signal"
	"syscall"

	"github.com/cilium/ebpf"

	dnsprobe "github.com/stratanet/strata/probes/dns"
)

func main() {
	mode := flag.String("mode", "", "tracepoint, cgroup_skb or syscall (default: the agent's choice)")
	flag.Parse()
	events, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 1 << 16})
	if err != nil {
		log.Fatal(err)
	}
	p, _, err := dnsprobe.Open(events, *mode)
	if err != nil {
		log.Fatal(err)
	}
	fmt.Println("attached", p.Mode())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	p.Close()
}
