package dns

import (
	"errors"
	"fmt"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/btf"
	"github.com/cilium/ebpf/link"

	"github.com/stratanet/strata/probes/cgroup"
	"github.com/stratanet/strata/probes/tracepoint"
)

// Modes, as strata_agent_probe_info reports them.
const (
	// ModeTracepoint: the sock_send_length and sock_recv_length
	// tracepoints (Linux 6.3+), which fire for socket calls only; a call
	// whose socket has no port 53 at the other end stops there.
	ModeTracepoint = "tracepoint"
	// ModeCgroupSKB: programs on the packets of every socket, handed
	// DNS's packets by the cgroup v2 root's program pair (probes/cgroup).
	// Nothing but packets pays for them.
	ModeCgroupSKB = "cgroup_skb"
	// ModeSyscall: the syscall tracepoints of reads and writes, the
	// fallback: every read and write on the node pays for them.
	ModeSyscall = "syscall"
)

// Probe is the loaded DNS capture.
type Probe struct {
	mode  string
	lost  *ebpf.Variable
	close []func() error
}

// Choices for Open besides a mode.
const (
	// Auto takes the cheapest mode the kernel has, on its own: the socket
	// tracepoints, then the packets, then the syscall tracepoints.
	Auto = ""
	// PreferPackets takes the packets first: for an agent whose HTTP
	// capture already pays the cgroup root's packet hook, DNS behind it
	// costs one branch a packet, less than hooks of its own.
	PreferPackets = "prefer-packets"
)

// Open loads the capture, writing into the shared ring events, in mode, or
// the first mode the kernel takes in the order Auto or PreferPackets says.
// Then the refusals of the modes before it are returned with the probe that
// fell back, for the log.
func Open(events *ebpf.Map, mode string) (p *Probe, fellBack error, err error) {
	opens := map[string]func(*ebpf.Map) (*Probe, error){
		ModeTracepoint: openSock, ModeCgroupSKB: openSKB, ModeSyscall: openSyscall,
	}
	order := map[string][]string{
		Auto:          {ModeTracepoint, ModeCgroupSKB, ModeSyscall},
		PreferPackets: {ModeCgroupSKB, ModeTracepoint, ModeSyscall},
	}[mode]
	if order == nil {
		open, ok := opens[mode]
		if !ok {
			return nil, nil, fmt.Errorf("unknown DNS probe mode %q", mode)
		}
		p, err := open(events)
		return p, nil, err
	}
	// Every refusal is said: the first is the cheapest mode's, the last
	// often the one to act on (a cgroup root to mount).
	var refused refusals
	for _, m := range order {
		if p, err = opens[m](events); err == nil {
			if len(refused) > 0 {
				fellBack = refused
			}
			return p, fellBack, nil
		}
		refused = append(refused, err)
	}
	return nil, nil, refused
}

// refusals are the modes' errors, said on one line.
type refusals []error

func (r refusals) Error() string {
	s := make([]string, len(r))
	for i, err := range r {
		s[i] = err.Error()
	}
	return strings.Join(s, "; ")
}

func (r refusals) Unwrap() []error { return r }

func openSock(events *ebpf.Map) (*Probe, error) {
	if hook := tracepoint.MissingBTF(tracepoint.SocketHooks...); hook != "" {
		return nil, fmt.Errorf("DNS probe (tracepoint): this kernel has no %s tracepoint (Linux 6.3+): %w", hook, ebpf.ErrNotSupported)
	}
	var objs sockObjects
	if err := load(loadSock, &objs, events); err != nil {
		return nil, fmt.Errorf("load DNS probe (tracepoint): %w", err)
	}
	p := &Probe{mode: ModeTracepoint, lost: objs.Lost, close: []func() error{objs.Close}}
	for _, prog := range []*ebpf.Program{objs.DnsSent, objs.DnsReceived} {
		l, err := link.AttachTracing(link.TracingOptions{Program: prog})
		if err != nil {
			p.Close()
			return nil, fmt.Errorf("attach DNS probe (tracepoint): %w", err)
		}
		p.close = append([]func() error{l.Close}, p.close...)
	}
	return p, nil
}

func openSKB(events *ebpf.Map) (*Probe, error) {
	if err := PacketsSupported(); err != nil {
		// Said in one line instead of the loader's verifier log.
		return nil, fmt.Errorf("DNS probe (cgroup_skb): %w", err)
	}
	var objs skbObjects
	if err := load(loadSkb, &objs, events); err != nil {
		return nil, fmt.Errorf("load DNS packet programs: %w", err)
	}
	// Behind the root's one program pair, which HTTP capture shares.
	leave, err := cgroup.Join(cgroup.DNS, objs.DnsEgress, objs.DnsIngress)
	if err != nil {
		objs.Close()
		return nil, fmt.Errorf("DNS probe (cgroup_skb): %w", err)
	}
	p := &Probe{mode: ModeCgroupSKB, lost: objs.Lost, close: []func() error{leave, objs.Close}}
	return p, nil
}

// PacketsSupported says whether the kernel lets the packet programs do what
// they do: reach the socket through the bpf_cast_to_kern_ctx kfunc (Linux
// 6.2+; kfuncs are BTF functions), and name a query's sender with
// bpf_get_current_pid_tgid and bpf_get_current_comm from a cgroup_skb
// program (refused there by 6.12, taken by 6.18). Probed, not guessed by
// version: backports differ.
func PacketsSupported() error {
	spec, err := btf.LoadKernelSpec()
	if err == nil {
		var fn *btf.Func
		if errors.Is(spec.TypeByName("bpf_cast_to_kern_ctx", &fn), btf.ErrNotFound) {
			return fmt.Errorf("this kernel has no bpf_cast_to_kern_ctx kfunc (Linux 6.2+): %w", ebpf.ErrNotSupported)
		}
	}
	return cgroup.NamesSender()
}

// load loads an object's programs into objs, writing into events.
func load(spec func() (*ebpf.CollectionSpec, error), objs any, events *ebpf.Map) error {
	s, err := spec()
	if err != nil {
		return err
	}
	s.Maps["events"].MaxEntries = events.MaxEntries()
	return s.LoadAndAssign(objs, &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{"events": events}})
}

// openSyscall attaches to the syscall tracepoints. Either every hook
// attaches or the probe is not there: a client library whose calls went
// unseen would look like one whose queries all time out.
func openSyscall(events *ebpf.Map) (*Probe, error) {
	var objs dnsObjects
	if err := load(loadDns, &objs, events); err != nil {
		return nil, fmt.Errorf("load DNS probe: %w", err)
	}
	p := &Probe{mode: ModeSyscall, lost: objs.Lost, close: []func() error{objs.Close}}
	if err := tracepoint.EnsureTracefs(); err != nil {
		p.Close()
		return nil, err
	}
	progs := objs.dnsPrograms
	links, err := tracepoint.AttachSyscalls(map[string]*ebpf.Program{
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
	for _, l := range links {
		p.close = append([]func() error{l.Close}, p.close...)
	}
	return p, nil
}

// Mode is how the probe is attached: ModeTracepoint, ModeCgroupSKB or
// ModeSyscall.
func (p *Probe) Mode() string { return p.mode }

// Lost is how many records the kernel could not queue.
func (p *Probe) Lost() uint64 {
	var n uint64
	p.lost.Get(&n)
	return n
}

// Close detaches everything.
func (p *Probe) Close() error {
	for _, c := range p.close {
		c()
	}
	return nil
}
