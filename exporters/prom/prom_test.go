package prom

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
)

func TestServesRegistryAndStops(t *testing.T) {
	reg := prometheus.NewRegistry()
	c := prometheus.NewCounter(prometheus.CounterOpts{Name: "strata_test_total", Help: "t"})
	c.Add(3)
	reg.MustRegister(c)
	s, err := Listen(zap.NewNop(), "127.0.0.1:0", reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx) }()
	resp, err := http.Get("http://" + s.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "strata_test_total 3") {
		t.Fatalf("body:\n%s", body)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Serve after cancel: %v", err)
	}
}

func TestTakenAddressFailsAtListen(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Listen(zap.NewNop(), ln.Addr().String(), prometheus.NewRegistry())
	if err == nil || !strings.Contains(err.Error(), ln.Addr().String()) {
		t.Fatalf("err = %v, want one naming %s", err, ln.Addr())
	}
}
