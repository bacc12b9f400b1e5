package http

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/stratanet/strata/probes/tracepoint"
)

// Mode is how the probe hooks the kernel; its value is what
// strata_agent_probe_info{probe="http"} reports (METRICS.md).
type Mode string

const (
	// Auto takes Tracepoint where the kernel has it, else Syscall.
	Auto Mode = ""
	// Tracepoint hooks the sock_send_length and sock_recv_length tracepoints
	// (kernel 6.3+) and pairs requests with responses in the kernel.
	Tracepoint Mode = "tracepoint"
	// Syscall hooks the read/write syscall families; the agent pairs.
	Syscall Mode = "syscall"
)

// Probe is the loaded HTTP capture.
type Probe struct {
	mode  Mode
	lost  *ebpf.Variable
	close func() error
	links []link.Link
}

// Open loads the programs, writing into the shared ring events, and
// attaches them. Either every hook of a mode attaches or the mode is not
// there: half the calls would pair requests with the wrong responses.
func Open(events *ebpf.Map, mode Mode) (*Probe, error) {
	if mode == Auto {
		p, err := Open(events, Tracepoint)
		if err == nil {
			return p, nil
		}
		p, err2 := Open(events, Syscall)
		if err2 != nil {
			return nil, errors.Join(err, err2)
		}
		return p, nil
	}
	load, opts := loadSock, &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{"events": events}}
	if mode == Syscall {
		load = loadSyscall
	}
	spec, err := load()
	if err != nil {
		return nil, err
	}
	spec.Maps["events"].MaxEntries = events.MaxEntries()
	p := &Probe{mode: mode}
	switch mode {
	case Tracepoint:
		var objs sockObjects
		if err := spec.LoadAndAssign(&objs, opts); err != nil {
			return nil, fmt.Errorf("load HTTP probe (%s): %w", mode, err)
		}
		p.lost, p.close = objs.Lost, objs.Close
		for _, h := range []struct {
			name string
			prog *ebpf.Program
		}{{"sock_send_length", objs.HttpSent}, {"sock_recv_length", objs.HttpReceived}, {"inet_sock_set_state", objs.HttpClosed}} {
			l, err := link.AttachTracing(link.TracingOptions{Program: h.prog})
			if err != nil {
				p.Close()
				return nil, fmt.Errorf("attach HTTP probe to %s: %w", h.name, err)
			}
			p.links = append(p.links, l)
		}
	case Syscall:
		var objs syscallObjects
		if err := spec.LoadAndAssign(&objs, opts); err != nil {
			return nil, fmt.Errorf("load HTTP probe (%s): %w", mode, err)
		}
		p.lost, p.close = objs.Lost, objs.Close
		progs := objs.syscallPrograms
		p.links, err = tracepoint.AttachSyscalls(map[string]*ebpf.Program{
			"sys_enter_write": progs.EnterWrite, "sys_enter_sendto": progs.EnterSendto,
			"sys_enter_writev": progs.EnterWritev, "sys_enter_sendmsg": progs.EnterSendmsg,
			"sys_enter_read": progs.EnterRead, "sys_enter_recvfrom": progs.EnterRecvfrom,
			"sys_enter_readv": progs.EnterReadv, "sys_enter_recvmsg": progs.EnterRecvmsg,
			"sys_exit_read": progs.ExitRead, "sys_exit_recvfrom": progs.ExitRecvfrom,
			"sys_exit_readv": progs.ExitReadv, "sys_exit_recvmsg": progs.ExitRecvmsg,
		})
		if err != nil {
			p.Close()
			return nil, err
		}
	default:
		return nil, fmt.Errorf("unknown HTTP probe mode %q", mode)
	}
	return p, nil
}

// Mode is how the probe runs.
func (p *Probe) Mode() Mode { return p.mode }

// Lost is how many records the kernel could not queue.
func (p *Probe) Lost() uint64 {
	var n uint64
	p.lost.Get(&n)
	return n
}

// Close detaches everything.
func (p *Probe) Close() error {
	for _, l := range p.links {
		l.Close()
	}
	return p.close()
}
