package harness

import (
	"context"
	"net"
	"testing"

	coltrace "go.opentelemetry.io/proto/otlp/collector/trace/v1"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
)

// OTLPProxy sits between the agent's OTLP gRPC exporter and a real trace
// backend (Jaeger) and injects the faults Proxy does, as gRPC statuses.
type OTLPProxy struct {
	faults
	coltrace.UnimplementedTraceServiceServer
	Addr string
	to   coltrace.TraceServiceClient
}

// StartOTLPProxy forwards to the OTLP gRPC backend at addr until the test
// ends. Down is not one of its faults: stop the backend for that.
func StartOTLPProxy(t *testing.T, addr string) *OTLPProxy {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	p := &OTLPProxy{faults: newFaults(), Addr: FreeAddr(t), to: coltrace.NewTraceServiceClient(conn)}
	ln, err := net.Listen("tcp", p.Addr)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer()
	coltrace.RegisterTraceServiceServer(srv, p)
	go srv.Serve(ln)
	t.Cleanup(func() { p.Set(Pass); srv.Stop(); conn.Close() })
	return p
}

// Set changes how the proxy answers from now on.
func (p *OTLPProxy) Set(f Fault) { p.set(f) }

func (p *OTLPProxy) Export(ctx context.Context, req *coltrace.ExportTraceServiceRequest) (*coltrace.ExportTraceServiceResponse, error) {
	body, _ := proto.Marshal(req)
	md, _ := metadata.FromIncomingContext(ctx)
	f, release := p.record(body, md)
	switch f {
	case Status500:
		return nil, status.Error(codes.Unavailable, "injected failure")
	case Status400:
		return nil, status.Error(codes.InvalidArgument, "injected: bad request")
	case Silent:
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return p.to.Export(ctx, req) // the backend needs no tenant: headers stop here
}
