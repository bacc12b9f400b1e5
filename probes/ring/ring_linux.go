// Package ring reads a BPF ring buffer into batches of decoded records,
// for every probe alike.
package ring

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// Reader turns raw samples into T and hands them out in batches: whatever
// the ring holds right now, up to cap(NewBatch()).
type Reader[T any] struct {
	Ring     *ringbuf.Reader
	Poll     time.Duration // how often a busy ring is drained
	Decode   func([]byte) (T, error)
	NewBatch func() []T
}

// idlePolls is how far the wait between drains grows, doubling, while the
// ring stays empty: each wake-up of an idle agent is a few system calls,
// and they are dear on some machines (~25 ms of CPU a second at 10 ms here).
const idlePolls = 8

// Open reads the ring buffer map m.
func Open[T any](m *ebpf.Map, poll time.Duration, decode func([]byte) (T, error), newBatch func() []T) (Reader[T], error) {
	r, err := ringbuf.NewReader(m)
	if err != nil {
		return Reader[T]{}, fmt.Errorf("open ring buffer: %w", err)
	}
	return Reader[T]{Ring: r, Poll: poll, Decode: decode, NewBatch: newBatch}, nil
}

// Run reads until ctx ends. emit owns each batch; bad counts samples that
// do not decode (never fatal).
func (r Reader[T]) Run(ctx context.Context, emit func([]T), bad func(error)) error {
	go func() {
		<-ctx.Done()
		r.Ring.Close()
	}()
	batch := r.NewBatch()
	flush := func() {
		if len(batch) > 0 {
			emit(batch)
			batch = r.NewBatch()
		}
	}
	var rec ringbuf.Record
	// The reader drains the ring every Poll and never blocks in epoll_wait:
	// while a goroutine sits in a blocking system call, the Go runtime's
	// sysmon hands its P off and keeps polling at 20 µs, which cost the
	// agent more CPU than reading the records (perf, 50k requests/s). With
	// a deadline in the past ReadInto returns what the ring holds, then
	// ErrDeadlineExceeded.
	r.Ring.SetDeadline(time.Unix(1, 0))
	wait := r.Poll
	timer := time.NewTimer(wait)
	defer timer.Stop()
	read := false // records since the last wait
	for {
		err := r.Ring.ReadInto(&rec)
		switch {
		case err == nil:
			read = true
			if e, err := r.Decode(rec.RawSample); err != nil {
				bad(err)
			} else {
				batch = append(batch, e)
			}
			if len(batch) == cap(batch) {
				flush()
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			flush()
			if read {
				wait = r.Poll
			} else {
				wait = min(2*wait, idlePolls*r.Poll)
			}
			read = false
			timer.Reset(wait)
			select {
			case <-ctx.Done():
			case <-timer.C:
			}
		case errors.Is(err, ringbuf.ErrClosed):
			flush()
			return nil
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
	}
}
