package mimir

import (
	"context"
	"errors"
	"net/url"
	"syscall"
	"testing"

	"github.com/stratanet/strata/exporters/export"
)

// An attempt the client's deadline ended is a timeout, though the
// transport saw only its cancellation; otherwise the transport's error
// says why (the client's hides it).
func TestClassifyTimeoutOverCancellation(t *testing.T) {
	e := &Exporter{last: &lastResult{}}
	e.last.set(0, errors.New("net/http: request canceled"))
	timedOut := &url.Error{Op: "Post", URL: "http://mimir/api/v1/push", Err: context.DeadlineExceeded}
	if got := export.Condition(e.classify(timedOut)); got != "timeout" {
		t.Errorf("client timed out, transport canceled: %q, want timeout", got)
	}
	e.last.set(0, syscall.ECONNRESET)
	if got := export.Condition(e.classify(errors.New("server returned an error"))); got != "connection reset" {
		t.Errorf("transport reset: %q, want connection reset", got)
	}
}
