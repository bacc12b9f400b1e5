package agent

import (
	"context"
	"testing"
	"time"

	"github.com/stratanet/strata/probes/event"
)

// A full queue makes the reader wait (the records stay in the ring), not
// drop: every batch arrives, in order, once the loop takes them.
func TestForwardWaitsForRoom(t *testing.T) {
	records := make(chan []event.Record, 1)
	emit := forward(context.Background(), records)
	done := make(chan struct{})
	go func() {
		for i := range 3 {
			emit([]event.Record{{TCP: event.TCP{Sock: uint64(i)}}})
		}
		close(done)
	}()
	for want := range 3 {
		var b []event.Record
		select {
		case b = <-records:
		case <-done:
			// The reader is through: what it sent must be queued already
			// (select picks at random when both are ready), else it went
			// on without the loop taking the rest.
			select {
			case b = <-records:
			default:
				t.Fatalf("batch %d and later never came", want)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("batch %d: nothing came", want)
		}
		if len(b) != 1 || b[0].TCP.Sock != uint64(want) {
			t.Fatalf("batch %d: %+v", want, b)
		}
	}
	<-done
}

// Once the agent stops, a waiting reader gives up its batch and returns.
func TestForwardStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	records := make(chan []event.Record) // nobody reads
	done := make(chan struct{})
	go func() { forward(ctx, records)([]event.Record{{}}); close(done) }()
	cancel()
	<-done
}
