// Package prom serves the agent's registry for Prometheus to scrape.
package prom

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
)

// Server is the /metrics endpoint.
type Server struct {
	log *zap.Logger
	ln  net.Listener
	srv *http.Server
}

// Checks answer the kubelet's probes: Live for /healthz, Ready for
// /readyz. A nil error is a pass; an error's text is the reply's body.
type Checks interface {
	Live() error
	Ready() error
}

// Listen binds addr now, so a port already taken fails at start, not later.
func Listen(log *zap.Logger, addr string, reg *prometheus.Registry, checks Checks) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("metrics address %s: %w", addr, err)
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{
		ErrorLog:          zap.NewStdLog(log),
		EnableOpenMetrics: true,
		Timeout:           10 * time.Second,
	}))
	mux.Handle("/healthz", check(log, "healthz", checks.Live))
	mux.Handle("/readyz", check(log, "readyz", checks.Ready))
	return &Server{log: log, ln: ln, srv: &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}}, nil
}

// check serves one probe: 200 "ok", or 503 and why.
func check(log *zap.Logger, name string, f func() error) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		if err := f(); err != nil {
			log.Debug("probe failed", zap.String("probe", name), zap.Error(err))
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	}
}

// Addr is where the server listens.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve runs until ctx ends.
func (s *Server) Serve(ctx context.Context) error {
	go func() {
		<-ctx.Done()
		shutdown, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		s.srv.Shutdown(shutdown)
	}()
	if err := s.srv.Serve(s.ln); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}
