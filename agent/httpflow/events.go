package httpflow

import (
	"crypto/rand"
	"encoding/hex"
	"strconv"

	"github.com/stratanet/strata/agent/emit"
	"github.com/stratanet/strata/agent/flow"
)

// failed sends a failed request as an event.
func (t *Table) failed(d done, secs float64, trace [16]byte) {
	src, dst := d.who.Local, d.who.Remote
	if d.server {
		src, dst = dst, src
	}
	f := make([]string, 0, 30)
	for i, v := range d.key.Values() {
		if v != "" {
			f = append(f, flow.KeyLabels[i], v)
		}
	}
	f = append(f, "source_addr", src.String(), "destination_addr", dst.String(),
		"method", d.p.method, "route", d.p.route, "status_code", d.status,
		"duration", strconv.FormatFloat(secs, 'f', 6, 64))
	if d.status == Noanswer {
		f = append(f, "error", "no response before the connection closed")
	}
	if trace != [16]byte{} {
		f = append(f, "trace_id", hex.EncodeToString(trace[:]))
	}
	t.Events.Push(emit.Event{Time: t.wall(d.end), Kind: emit.HTTPError, Namespace: d.key.SourceNamespace, Fields: f})
}

// span is the request as OTel semantic conventions describe it.
func (t *Table) span(d done, key flow.Key, trace [16]byte) emit.Span {
	p, status := d.p, d.status
	sp := emit.Span{TraceID: trace, ParentID: p.parent.span, Name: p.method + " " + p.route, Server: d.server,
		Start: t.wall(p.at), End: t.wall(d.end)}
	rand.Read(sp.SpanID[:])
	server, client := d.who.Local, d.who.Remote
	sp.Resource = emit.Resource{Service: key.SourceWorkload, Namespace: key.SourceNamespace, Cluster: t.cluster}
	if d.server {
		sp.Resource = emit.Resource{Service: key.DestinationWorkload, Namespace: key.DestinationNamespace, Cluster: t.cluster}
	} else {
		server, client = client, server
	}
	code, _ := strconv.Atoi(status)
	sp.Attrs = map[string]any{
		"http.request.method": p.method, "url.path": p.route, "http.route": p.route,
		"server.address": server.Addr().String(), "server.port": int64(server.Port()),
		"client.address": client.Addr().String(),
	}
	if code > 0 {
		sp.Attrs["http.response.status_code"] = int64(code)
	} else {
		sp.Attrs["error.type"] = "no_response"
	}
	sp.Error = code == 0 || code >= 500 || (!d.server && code >= 400)
	return sp
}
