package cgroup

import (
	"fmt"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Slot is a capture's place behind the root's programs (bpf/root.c): which
// packets it is handed.
type Slot uint32

const (
	// DNS is handed UDP and TCP to port 53 (egress) and from it (ingress).
	DNS Slot = 0
	// HTTP is handed every other TCP segment with at least 16 bytes of
	// payload.
	HTTP Slot = 1
)

func (s Slot) String() string {
	switch s {
	case DNS:
		return "DNS"
	case HTTP:
		return "HTTP"
	}
	return fmt.Sprintf("slot %d", uint32(s))
}

// The root's one program pair, attached while any capture has joined it:
// every packet on the node pays the cgroup_skb hook once, whichever
// captures are on.
var pair struct {
	sync.Mutex
	objs   *rootObjects
	links  []link.Link
	joined map[Slot]bool
}

// Join hands a capture's packets (egress and ingress, cgroup_skb programs)
// to it from the root's program pair, attaching the pair to the cgroup v2
// root if no capture has yet. leave takes them out again, and detaches the
// pair when the last capture leaves. A slot holds one capture at a time.
func Join(slot Slot, egress, ingress *ebpf.Program) (leave func() error, err error) {
	pair.Lock()
	defer pair.Unlock()
	if pair.joined[slot] {
		return nil, fmt.Errorf("cgroup root: %s capture already joined in this process", slot)
	}
	if pair.objs == nil {
		if err := attachRoot(); err != nil {
			return nil, err
		}
	}
	key := uint32(slot)
	if err := pair.objs.EgressNext.Put(key, egress); err != nil {
		return nil, fmt.Errorf("cgroup root: %s egress program: %w", slot, err)
	}
	if err := pair.objs.IngressNext.Put(key, ingress); err != nil {
		pair.objs.EgressNext.Delete(key)
		return nil, fmt.Errorf("cgroup root: %s ingress program: %w", slot, err)
	}
	pair.joined[slot] = true
	left := false
	return func() error {
		pair.Lock()
		defer pair.Unlock()
		if left {
			return nil
		}
		left = true
		delete(pair.joined, slot)
		pair.objs.EgressNext.Delete(key)
		pair.objs.IngressNext.Delete(key)
		if len(pair.joined) == 0 {
			detachRoot()
		}
		return nil
	}, nil
}

func attachRoot() error {
	dir, err := Root()
	if err != nil {
		return err
	}
	var objs rootObjects
	if err := loadRootObjects(&objs, nil); err != nil {
		return fmt.Errorf("load the cgroup root's packet programs: %w", err)
	}
	pair.objs, pair.joined = &objs, map[Slot]bool{}
	for _, a := range []struct {
		prog   *ebpf.Program
		attach ebpf.AttachType
	}{{objs.RootEgress, ebpf.AttachCGroupInetEgress}, {objs.RootIngress, ebpf.AttachCGroupInetIngress}} {
		l, err := link.AttachCgroup(link.CgroupOptions{Path: dir, Attach: a.attach, Program: a.prog})
		if err != nil {
			detachRoot()
			return fmt.Errorf("attach packet programs to the cgroup v2 root %s: %w", dir, err)
		}
		pair.links = append(pair.links, l)
	}
	return nil
}

func detachRoot() {
	for _, l := range pair.links {
		l.Close()
	}
	pair.objs.Close()
	pair.objs, pair.links, pair.joined = nil, nil, nil
}
