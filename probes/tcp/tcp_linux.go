package tcp

import (
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"go.uber.org/zap"
	"golang.org/x/sys/unix"
)

// Options size the ring buffer.
type Options struct {
	RingBytes uint32 // power of two, multiple of the page size
}

// Status is what one probe ended up as.
type Status struct {
	Probe string
	Mode  string // tracepoint, iterator or disabled
	Err   error
}

// Probes are the loaded TCP programs sharing one ring buffer.
type Probes struct {
	log    *zap.Logger
	opts   Options
	state  stateObjects
	events eventsObjects
	sweep  sweepObjects
	iter   *link.Iter
	links  []link.Link
	status []Status
}

// Open loads and attaches the probes. Only the lifecycle probe is required:
// every other probe that the kernel refuses is logged once, reported as
// disabled and left out.
func Open(log *zap.Logger, opts Options) (*Probes, error) {
	p := &Probes{log: log, opts: opts}

	spec, err := loadState()
	if err != nil {
		return nil, err
	}
	if err := configure(spec, opts); err != nil {
		return nil, err
	}
	if err := spec.LoadAndAssign(&p.state, nil); err != nil {
		return nil, fmt.Errorf("load TCP lifecycle probe: %w", explain(err))
	}
	tp, err := link.AttachTracing(link.TracingOptions{Program: p.state.OnState})
	if err != nil {
		p.state.Close()
		return nil, fmt.Errorf("attach tracepoint inet_sock_set_state: %w", explain(err))
	}
	p.links = append(p.links, tp)
	p.status = append(p.status, Status{Probe: "tcp_state", Mode: "tracepoint"})

	shared := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{"events": p.state.Events}}
	p.openEvents(opts, shared)
	p.openSweep(opts, shared)

	return p, nil
}

func (p *Probes) openEvents(opts Options, shared *ebpf.CollectionOptions) {
	disable := func(err error, probes ...string) {
		for _, name := range probes {
			p.disable(name, err)
		}
	}
	spec, err := loadEvents()
	if err == nil {
		err = configure(spec, opts)
	}
	if err == nil {
		err = spec.LoadAndAssign(&p.events, shared)
	}
	if err != nil {
		disable(explain(err), "tcp_retransmit", "tcp_reset")
		return
	}
	if l, err := link.AttachTracing(link.TracingOptions{Program: p.events.OnRetransmit}); err != nil {
		disable(explain(err), "tcp_retransmit")
	} else {
		p.links = append(p.links, l)
		p.status = append(p.status, Status{Probe: "tcp_retransmit", Mode: "tracepoint"})
	}
	// Resets need both directions or none: half a counter misleads.
	sent, err := link.AttachTracing(link.TracingOptions{Program: p.events.OnSendReset})
	if err != nil {
		disable(explain(err), "tcp_reset")
		return
	}
	recv, err := link.AttachTracing(link.TracingOptions{Program: p.events.OnReceiveReset})
	if err != nil {
		sent.Close()
		disable(explain(err), "tcp_reset")
		return
	}
	p.links = append(p.links, sent, recv)
	p.status = append(p.status, Status{Probe: "tcp_reset", Mode: "tracepoint"})
}

func (p *Probes) openSweep(opts Options, shared *ebpf.CollectionOptions) {
	spec, err := loadSweep()
	if err == nil {
		err = configure(spec, opts)
	}
	if err == nil {
		err = spec.LoadAndAssign(&p.sweep, shared)
	}
	if err == nil {
		p.iter, err = link.AttachIter(link.IterOptions{Program: p.sweep.Sweep})
	}
	if err != nil {
		// Close-time counters still arrive with every closed connection.
		p.disable("tcp_sweep", explain(err))
		return
	}
	p.status = append(p.status, Status{Probe: "tcp_sweep", Mode: "iterator"})
}

func (p *Probes) disable(name string, err error) {
	p.log.Warn("probe disabled; the agent continues without it", zap.String("probe", name), zap.Error(err))
	p.status = append(p.status, Status{Probe: name, Mode: "disabled", Err: err})
}

func configure(spec *ebpf.CollectionSpec, opts Options) error {
	if m, ok := spec.Maps["events"]; ok && opts.RingBytes > 0 {
		m.MaxEntries = opts.RingBytes
	}
	return nil
}

// Status lists every probe with the mode it runs in.
func (p *Probes) Status() []Status { return p.status }

// CanSweep reports whether live sockets can be read periodically.
func (p *Probes) CanSweep() bool { return p.iter != nil }

// Lost returns, per probe, the records the kernel could not queue.
func (p *Probes) Lost() map[string]uint64 {
	lost := map[string]uint64{}
	read := func(name string, v *ebpf.Variable) {
		var n uint64
		if v != nil && v.Get(&n) == nil {
			lost[name] += n
		}
	}
	read("tcp_state", p.state.Lost)
	read("tcp_retransmit", p.events.Lost)
	read("tcp_reset", p.events.LostReset)
	read("tcp_sweep", p.sweep.Lost)
	return lost
}

// Events is the ring buffer every probe writes into; the agent reads it
// and hands it to the other probe families to share.
func (p *Probes) Events() *ebpf.Map { return p.state.Events }

// Sweep walks the TCP sockets of the calling thread's network namespace; the
// snapshots and a closing SweepEnd arrive through Read. The caller pins the
// thread to the namespace it wants.
func (p *Probes) Sweep(gen uint32) error {
	if p.iter == nil {
		return errors.New("socket iterator unavailable")
	}
	if err := p.sweep.SweepGen.Set(gen); err != nil {
		return err
	}
	r, err := p.iter.Open()
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(io.Discard, r)
	return err
}

// Close detaches everything.
func (p *Probes) Close() error {
	if p.iter != nil {
		p.iter.Close()
	}
	for _, l := range p.links {
		l.Close()
	}
	p.sweep.Close()
	p.events.Close()
	return p.state.Close()
}

// explain adds the one fact a user needs to the kernel's terse answers.
func explain(err error) error {
	switch {
	case errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("%w (the kernel has no such hook)", err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return fmt.Errorf("%w (not supported by this kernel)", err)
	case errors.Is(err, os.ErrPermission):
		// Before 5.11 the kernel also refuses maps beyond RLIMIT_MEMLOCK
		// with EPERM: where that limit is finite it may be the cause.
		var lim unix.Rlimit
		if unix.Getrlimit(unix.RLIMIT_MEMLOCK, &lim) == nil && lim.Cur != unix.RLIM_INFINITY {
			return fmt.Errorf("%w (needs CAP_BPF+CAP_PERFMON+CAP_SYS_ADMIN, and on kernels before 5.11 a memlock limit above the probes' maps: RLIMIT_MEMLOCK is %d KiB)", err, lim.Cur/1024)
		}
		return fmt.Errorf("%w (needs root or CAP_BPF+CAP_PERFMON+CAP_SYS_ADMIN)", err)
	}
	return err
}
