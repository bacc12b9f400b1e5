package http

import (
	"context"
	"fmt"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/stratanet/strata/probes/event"
	"github.com/stratanet/strata/probes/ring"
)

// Probe is the loaded HTTP capture.
type Probe struct {
	objs   httpObjects
	links  []link.Link
	reader *ringbuf.Reader
	poll   time.Duration
}

// Open loads the programs and attaches them to the syscall tracepoints.
// Either every hook attaches or the probe is not there: half the calls
// would pair requests with the wrong responses.
func Open(ringBytes uint32, wakeupBytes uint64, poll time.Duration) (*Probe, error) {
	spec, err := loadHttp()
	if err != nil {
		return nil, err
	}
	if ringBytes > 0 {
		spec.Maps["http_events"].MaxEntries = ringBytes
	}
	if wakeupBytes > 0 {
		if err := spec.Variables["wakeup_bytes"].Set(wakeupBytes); err != nil {
			return nil, err
		}
	}
	p := &Probe{poll: poll}
	if err := spec.LoadAndAssign(&p.objs, nil); err != nil {
		return nil, fmt.Errorf("load HTTP probe: %w", err)
	}
	progs := p.objs.httpPrograms
	for _, h := range []struct {
		tp   string
		prog *ebpf.Program
	}{
		{"sys_enter_write", progs.EnterWrite}, {"sys_enter_sendto", progs.EnterSendto},
		{"sys_enter_writev", progs.EnterWritev}, {"sys_enter_sendmsg", progs.EnterSendmsg},
		{"sys_enter_read", progs.EnterRead}, {"sys_enter_recvfrom", progs.EnterRecvfrom},
		{"sys_enter_readv", progs.EnterReadv}, {"sys_enter_recvmsg", progs.EnterRecvmsg},
		{"sys_exit_read", progs.ExitRead}, {"sys_exit_recvfrom", progs.ExitRecvfrom},
		{"sys_exit_readv", progs.ExitReadv}, {"sys_exit_recvmsg", progs.ExitRecvmsg},
	} {
		l, err := link.Tracepoint("syscalls", h.tp, h.prog, nil)
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("attach tracepoint syscalls/%s: %w", h.tp, err)
		}
		p.links = append(p.links, l)
	}
	if p.reader, err = ringbuf.NewReader(p.objs.HttpEvents); err != nil {
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

// Read decodes records until ctx ends, handing each batch to emit.
func (p *Probe) Read(ctx context.Context, emit func([]event.HTTP), bad func(error)) error {
	return ring.Reader[event.HTTP]{Ring: p.reader, Poll: p.poll, Decode: decode,
		NewBatch: func() []event.HTTP { return make([]event.HTTP, 0, 256) }}.Run(ctx, emit, bad)
}

// Close detaches everything.
func (p *Probe) Close() error {
	if p.reader != nil {
		p.reader.Close()
	}
	for _, l := range p.links {
		l.Close()
	}
	return p.objs.Close()
}
