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
	Poll     time.Duration // longest a record waits when wake-ups are batched
	Decode   func([]byte) (T, error)
	NewBatch func() []T
}

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
	// The deadline is renewed only when it fires, not per record.
	r.Ring.SetDeadline(time.Now().Add(r.Poll))
	for {
		err := r.Ring.ReadInto(&rec)
		switch {
		case err == nil:
			if e, err := r.Decode(rec.RawSample); err != nil {
				bad(err)
			} else {
				batch = append(batch, e)
			}
			if len(batch) == cap(batch) || r.Ring.AvailableBytes() == 0 {
				flush()
			}
		case errors.Is(err, os.ErrDeadlineExceeded):
			flush()
			r.Ring.SetDeadline(time.Now().Add(r.Poll))
		case errors.Is(err, ringbuf.ErrClosed):
			flush()
			return nil
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
	}
}
