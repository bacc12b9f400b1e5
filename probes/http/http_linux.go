package http

import (
	"errors"
	"fmt"
	"io"
	"math"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/stratanet/strata/probes/cgroup"
	"github.com/stratanet/strata/probes/event"
	"github.com/stratanet/strata/probes/tracepoint"
)

// Mode is how the probe hooks the kernel; its value is what
// strata_agent_probe_info{probe="http"} reports (METRICS.md).
type Mode string

const (
	// Auto takes Packet where the kernel allows it, else Tracepoint, else
	// Syscall.
	Auto Mode = ""
	// Packet reads each TCP segment's first bytes from cgroup_skb programs
	// on the cgroup v2 root (bpf/skb.c) and pairs in the kernel; nothing on
	// the path of reads and writes pays for it.
	Packet Mode = "cgroup_skb"
	// Tracepoint hooks the sock_send_length and sock_recv_length tracepoints
	// (kernel 6.3+) and pairs requests with responses in the kernel.
	Tracepoint Mode = "tracepoint"
	// Syscall hooks the read/write syscall families; the agent pairs.
	Syscall Mode = "syscall"
)

// Options say how the probe runs.
type Options struct {
	Mode Mode
	// Tally counts most exchanges in the kernel (Packet and Tracepoint)
	// rather than sending each: the agent gets per-socket counts at each
	// Tally call and at close, and whole records only for what needs its
	// bytes (a slot's first exchange, 5xx and unanswered ones, exemplar
	// candidates). Off when every request must become a span.
	Tally bool
	// CollapseIDs lets exchanges whose paths differ only in identifier
	// segments (route.isID) share a tally slot; right unless user route
	// patterns name such segments literally.
	CollapseIDs bool
	// Floor (Packet and Tracepoint, benchmarks only): the programs find
	// each segment's payload or call's buffer and read its first bytes,
	// then stop; nothing is recorded. What capture from these hooks costs
	// at least.
	Floor bool
}

// Probe is the loaded HTTP capture.
type Probe struct {
	mode     Mode
	fellBack error // why Auto did not get Tracepoint, when it took Syscall
	lost     *ebpf.Variable
	close    func() error
	links    []link.Link
	iter     *link.Iter   // the tally iterator; nil without Tally
	leave    func() error // Packet: out of the cgroup root's programs
}

// Open loads the programs, writing into the shared ring events, and
// attaches them. Either every hook of a mode attaches or the mode is not
// there: half the calls would pair requests with the wrong responses.
func Open(events *ebpf.Map, o Options) (*Probe, error) {
	if o.Mode == Auto {
		var errs []error
		for _, m := range []Mode{Packet, Tracepoint, Syscall} {
			o.Mode = m
			p, err := Open(events, o)
			if err == nil {
				if m == Syscall { // the dear one: say which hook was missing
					p.fellBack = errs[len(errs)-1]
				}
				return p, nil
			}
			errs = append(errs, err)
		}
		return nil, errors.Join(errs...)
	}
	mode := o.Mode
	load := loadSock
	switch mode {
	case Packet:
		if err := PacketsSupported(); err != nil {
			return nil, fmt.Errorf("HTTP probe (cgroup_skb): %w", err)
		}
		load = loadSkb
	case Tracepoint:
		// Said in one line rather than as the attach's opaque EINVAL.
		if hook := tracepoint.MissingBTF(tracepoint.SocketHooks...); hook != "" {
			return nil, fmt.Errorf("HTTP probe (tracepoint): this kernel has no %s tracepoint (Linux 6.3+): %w", hook, ebpf.ErrNotSupported)
		}
	case Syscall:
		load = loadSyscall
	default:
		return nil, fmt.Errorf("unknown HTTP probe mode %q", mode)
	}
	spec, err := load()
	if err != nil {
		return nil, err
	}
	spec.Maps["events"].MaxEntries = events.MaxEntries()
	if mode != Syscall { // the kernel pairs and tallies
		if err := setTally(spec, o); err != nil {
			return nil, err
		}
	}
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{"events": events}}
	p := &Probe{mode: mode}
	switch mode {
	case Packet:
		var objs skbObjects
		if err := spec.LoadAndAssign(&objs, opts); err != nil {
			return nil, fmt.Errorf("load HTTP probe (%s): %w", mode, err)
		}
		p.lost, p.close = objs.Lost, objs.Close
		// The segment programs are handed their packets by the cgroup
		// root's program pair, which DNS capture shares; the socket-state
		// hook names owners and sends unanswered requests.
		if err := p.attachPairing(o, objs.HttpCounts, hook{"inet_sock_set_state", objs.HttpState}); err != nil {
			return nil, err
		}
		if p.leave, err = cgroup.Join(cgroup.HTTP, objs.HttpEgress, objs.HttpIngress); err != nil {
			p.Close()
			return nil, fmt.Errorf("HTTP probe (cgroup_skb): %w", err)
		}
	case Tracepoint:
		var objs sockObjects
		if err := spec.LoadAndAssign(&objs, opts); err != nil {
			return nil, fmt.Errorf("load HTTP probe (%s): %w", mode, err)
		}
		p.lost, p.close = objs.Lost, objs.Close
		if err := p.attachPairing(o, objs.HttpCounts, hook{"sock_send_length", objs.HttpSent},
			hook{"sock_recv_length", objs.HttpReceived}, hook{"inet_sock_set_state", objs.HttpClosed}); err != nil {
			return nil, err
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
	}
	return p, nil
}

// hook is a tp_btf program and the tracepoint it attaches to.
type hook struct {
	name string
	prog *ebpf.Program
}

// attachPairing attaches what the modes that pair in the kernel share: the
// tally iterator (with o.Tally) and their tracepoint hooks. On failure the
// probe is closed.
func (p *Probe) attachPairing(o Options, counts *ebpf.Program, hooks ...hook) error {
	if o.Tally {
		var err error
		if p.iter, err = link.AttachIter(link.IterOptions{Program: counts}); err != nil {
			p.Close()
			return fmt.Errorf("attach HTTP tally iterator: %w", err)
		}
	}
	for _, h := range hooks {
		l, err := link.AttachTracing(link.TracingOptions{Program: h.prog})
		if err != nil {
			p.Close()
			return fmt.Errorf("attach HTTP probe to %s: %w", h.name, err)
		}
		p.links = append(p.links, l)
	}
	return nil
}

// PacketsSupported says whether the kernel takes Packet mode's programs:
// they name a request's sender (cgroup.NamesSender).
func PacketsSupported() error { return cgroup.NamesSender() }

// setTally sets the sock object's tally constants: on or off, and the
// latency buckets, event.HTTPBuckets in nanoseconds.
func setTally(spec *ebpf.CollectionSpec, o Options) error {
	var bounds [len(tallyRecord{}.Slots[0].Counts) - 1]uint64
	if len(event.HTTPBuckets) != len(bounds) {
		return fmt.Errorf("HTTP probe: %d latency buckets, the kernel counts %d", len(event.HTTPBuckets), len(bounds))
	}
	for i, b := range event.HTTPBuckets {
		bounds[i] = uint64(math.Round(b * 1e9))
	}
	for name, v := range map[string]any{"tally": o.Tally, "collapse_ids": o.CollapseIDs, "bounds_ns": bounds, "floor_only": o.Floor} {
		if err := spec.Variables[name].Set(v); err != nil {
			return fmt.Errorf("HTTP probe: set %s: %w", name, err)
		}
	}
	return nil
}

// Tally moves what the kernel counted on the sockets of the calling
// thread's network namespace into the ring, one record per socket with new
// counts; a no-op without Options.Tally. The caller pins the thread (the
// TCP sweep's netns.Do).
func (p *Probe) Tally() error {
	if p.iter == nil {
		return nil
	}
	r, err := p.iter.Open()
	if err != nil {
		return fmt.Errorf("HTTP tally: %w", err)
	}
	defer r.Close()
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("HTTP tally: %w", err)
	}
	return nil
}

// Mode is how the probe runs.
func (p *Probe) Mode() Mode { return p.mode }

// FellBack is why a probe opened in Auto mode took Syscall (the missing
// hook, in one line); nil when it did not.
func (p *Probe) FellBack() error { return p.fellBack }

// Lost is how many records the kernel could not queue.
func (p *Probe) Lost() uint64 {
	var n uint64
	p.lost.Get(&n)
	return n
}

// Close detaches everything.
func (p *Probe) Close() error {
	if p.leave != nil {
		p.leave()
	}
	if p.iter != nil {
		p.iter.Close()
	}
	for _, l := range p.links {
		l.Close()
	}
	return p.close()
}
