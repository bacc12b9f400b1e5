package dns

import (
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/stratanet/strata/probes/tracepoint"
)

// Probe is the loaded DNS capture.
type Probe struct {
	objs  dnsObjects
	links []link.Link
}

// Open loads the programs, writing into the shared ring events, and
// attaches them to the syscall tracepoints. Either every hook attaches or
// the probe is not there: a client library whose calls went unseen would
// look like one whose queries all time out.
func Open(events *ebpf.Map) (*Probe, error) {
	spec, err := loadDns()
	if err != nil {
		return nil, err
	}
	spec.Maps["events"].MaxEntries = events.MaxEntries()
	p := &Probe{}
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{"events": events}}
	if err := spec.LoadAndAssign(&p.objs, opts); err != nil {
		return nil, fmt.Errorf("load DNS probe: %w", err)
	}
	if err := tracepoint.EnsureTracefs(); err != nil {
		p.Close()
		return nil, err
	}
	progs := p.objs.dnsPrograms
	p.links, err = tracepoint.AttachSyscalls(map[string]*ebpf.Program{
		"sys_enter_write": progs.EnterWrite, "sys_enter_writev": progs.EnterWritev,
		"sys_enter_sendto": progs.EnterSendto, "sys_enter_sendmsg": progs.EnterSendmsg,
		"sys_enter_sendmmsg": progs.EnterSendmmsg,
		"sys_exit_sendto":    progs.ExitSendto, "sys_exit_sendmsg": progs.ExitSendmsg,
		"sys_exit_sendmmsg": progs.ExitSendmmsg,
		"sys_enter_read":    progs.EnterRead, "sys_enter_readv": progs.EnterReadv,
		"sys_enter_recvfrom": progs.EnterRecvfrom, "sys_enter_recvmsg": progs.EnterRecvmsg,
		"sys_enter_recvmmsg": progs.EnterRecvmmsg,
		"sys_exit_read":      progs.ExitRead, "sys_exit_readv": progs.ExitReadv,
		"sys_exit_recvfrom": progs.ExitRecvfrom, "sys_exit_recvmsg": progs.ExitRecvmsg,
		"sys_exit_recvmmsg": progs.ExitRecvmmsg,
	})
	if err != nil {
		p.Close()
		return nil, err
	}
	return p, nil
}

// Lost is how many records the kernel could not queue.
func (p *Probe) Lost() uint64 {
	var n uint64
	p.objs.Lost.Get(&n)
	return n
}

// Close detaches everything.
func (p *Probe) Close() error {
	for _, l := range p.links {
		l.Close()
	}
	return p.objs.Close()
}
