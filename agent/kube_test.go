package agent

import (
	"errors"
	"testing"

	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"
	"k8s.io/klog/v2"
)

// A refused watch, as client-go's reflector reports it, is a zap line of
// the agent's, at error level, with its fields.
func TestClientGoLogsThroughZap(t *testing.T) {
	core, logs := observer.New(zapcore.InfoLevel)
	klogToZap(zap.New(core).Named("kube"))
	defer klog.ClearLogger()
	klog.ErrorS(errors.New(`pods is forbidden: User "system:serviceaccount:strata:strata-agent" cannot list resource "pods"`),
		"Failed to watch", "reflector", "k8s.io/client-go/informers/factory.go:160")
	klog.V(4).InfoS("too chatty for info") // client-go's debug detail stays out
	got := logs.All()
	if len(got) != 1 {
		t.Fatalf("%d lines, want 1: %v", len(got), got)
	}
	e := got[0]
	if e.LoggerName != "kube.client-go" || e.Level != zapcore.ErrorLevel || e.Message != "Failed to watch" {
		t.Errorf("line %q %s %q, want kube.client-go error \"Failed to watch\"", e.LoggerName, e.Level, e.Message)
	}
	if f := e.ContextMap(); f["reflector"] != "k8s.io/client-go/informers/factory.go:160" || f["error"] == nil {
		t.Errorf("fields %v, want reflector and error", f)
	}
}
