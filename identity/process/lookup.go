package process

import (
	"context"
	"net/netip"
)

// Need says what a Lookup asks the host.
type Need uint8

const (
	Addrs      Need = iota + 1 // the addresses of one network namespace (setns)
	Owners                     // every socket inode's process (a readlink of every /proc/*/fd)
	Namespaces                 // every network namespace of the host (a readlink of every /proc/*/ns/net)
	Cgroup                     // one process's cgroups (/proc/PID/cgroup), for the Kubernetes pod it belongs to
)

func (n Need) String() string {
	switch n {
	case Addrs:
		return "addresses"
	case Namespaces:
		return "namespaces"
	case Cgroup:
		return "cgroup"
	}
	return "owners"
}

// Lookup is a question for the host, asked off the event loop.
type Lookup struct {
	Need  Need
	Netns uint32 // Addrs: the namespace
	PID   uint32 // Addrs: a process known to live in it, or 0; Cgroup: the process
}

// Answer is what the host said, delivered back to the event loop.
type Answer struct {
	Lookup
	Addrs  []netip.Addr
	Owners map[uint64]string
	All    []uint32 // Namespaces: every namespace found
	Cgroup []byte   // Cgroup: the file's content
	Err    error
}

// Asker takes a lookup to answer later; false when it cannot take more.
type Asker interface{ Ask(Lookup) bool }

// Worker answers lookups in goroutines of its own, one per Need, so that a
// slow scan of every fd never delays a namespace's addresses (which the
// event loop may be waiting for). Each Need has a bounded queue: a Worker
// that falls behind refuses (Ask returns false) and the resolver counts it.
type Worker struct {
	host    Host
	queues  map[Need]chan Lookup
	answers chan Answer
}

// NewWorker answers from host; queue bounds the lookups waiting per Need.
func NewWorker(host Host, queue int) *Worker {
	return &Worker{
		host: host,
		queues: map[Need]chan Lookup{Addrs: make(chan Lookup, queue), Owners: make(chan Lookup, 1), Namespaces: make(chan Lookup, 1),
			Cgroup: make(chan Lookup, queue)},
		answers: make(chan Answer, queue),
	}
}

// Ask implements Asker; it never blocks. An owners scan or a namespace
// listing already queued answers a second ask too.
func (w *Worker) Ask(l Lookup) bool {
	select {
	case w.queues[l.Need] <- l:
		return true
	default:
		return false
	}
}

// Answers is where answers come, in the order each Need's were asked.
func (w *Worker) Answers() <-chan Answer { return w.answers }

// Run answers until ctx ends.
func (w *Worker) Run(ctx context.Context) {
	done := make(chan struct{})
	for _, q := range w.queues {
		go func() {
			defer func() { done <- struct{}{} }()
			for {
				select {
				case <-ctx.Done():
					return
				case l := <-q:
					select {
					case w.answers <- w.Do(l): // waits for the loop, never the reverse
					case <-ctx.Done():
						return
					}
				}
			}
		}()
	}
	for range w.queues {
		<-done
	}
}

// Do answers l here and now: for the agent's start, before any event.
func (w *Worker) Do(l Lookup) Answer {
	a := Answer{Lookup: l}
	switch l.Need {
	case Addrs:
		a.Addrs, a.Err = w.host.NetnsAddrs(l.Netns, l.PID)
	case Owners:
		a.Owners, a.Err = w.host.Owners()
	case Namespaces:
		a.All, a.Err = w.host.Namespaces()
	case Cgroup:
		a.Cgroup, a.Err = w.host.Cgroup(l.PID)
	}
	return a
}
