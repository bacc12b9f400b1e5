package process

import (
	"context"
	"net/netip"
	"testing"
)

// blockingHost answers only when the test lets it: a host whose /proc is slow.
type blockingHost struct {
	fakeHost
	entered, gate chan struct{}
}

func (h *blockingHost) NetnsAddrs(ns, pid uint32) ([]netip.Addr, error) {
	h.entered <- struct{}{}
	<-h.gate
	return h.fakeHost.NetnsAddrs(ns, pid)
}

// The worker answers in order, and a worker that falls behind refuses
// (Ask is false) rather than making the asker wait.
func TestWorkerAnswersInOrderAndRefusesWhenFull(t *testing.T) {
	h := &blockingHost{fakeHost: fakeHost{addrs: map[uint32][]netip.Addr{1: {netip.MustParseAddr("10.0.0.1")}, 2: {}}}, entered: make(chan struct{}, 16), gate: make(chan struct{})}
	w := NewWorker(h, 2)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go w.Run(ctx)

	if !w.Ask(Lookup{Need: Addrs, Netns: 1}) { // taken by the goroutine, which blocks on the gate
		t.Fatal("first ask refused")
	}
	<-h.entered
	accepted := 1
	for range 10 {
		if w.Ask(Lookup{Need: Addrs, Netns: 2}) {
			accepted++
		}
	}
	// One in the host's hands, two queued: the rest refused.
	if accepted != 3 {
		t.Fatalf("%d asks accepted by a stuck worker with a queue of 2, want 3", accepted)
	}
	close(h.gate)
	a := <-w.Answers()
	if a.Netns != 1 || len(a.Addrs) != 1 || a.Err != nil {
		t.Fatalf("first answer %+v", a)
	}
	for range accepted - 1 {
		if a := <-w.Answers(); a.Netns != 2 || a.Err != nil {
			t.Fatalf("answer %+v, want namespace 2", a)
		}
	}
}
