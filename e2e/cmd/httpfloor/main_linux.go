// Command httpfloor attaches the HTTP probe's hooks in floor mode (find
// each segment's payload or call's buffer, read its first bytes, record
// nothing) until it is stopped: the benchmark's measure of what any capture
// from those hooks costs at least, run beside an agent with HTTP capture
// off. -mode picks the hooks; by default those the agent would pick.
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
	httpprobe "github.com/stratanet/strata/probes/http"
)

func main() {
	mode := flag.String("mode", "", "probe mode: cgroup_skb, tracepoint or syscall (default: the agent's choice)")
	withDNS := flag.Bool("dns", false, "DNS capture on too (its records dropped): the floor as HTTP capture would pay it beside DNS")
	flag.Parse()
	events, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.RingBuf, MaxEntries: 1 << 16})
	if err != nil {
		log.Fatal(err)
	}
	p, err := httpprobe.Open(events, httpprobe.Options{Mode: httpprobe.Mode(*mode), Floor: true})
	if err != nil {
		log.Fatal(err)
	}
	if *withDNS {
		choice := dnsprobe.Auto // as the agent chooses beside HTTP capture
		if p.Mode() == httpprobe.Packet {
			choice = dnsprobe.PreferPackets
		}
		d, _, err := dnsprobe.Open(events, choice)
		if err != nil {
			log.Fatal(err)
		}
		defer d.Close()
	}
	fmt.Println("attached", p.Mode())
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGINT, syscall.SIGTERM)
	<-stop
	p.Close()
}
