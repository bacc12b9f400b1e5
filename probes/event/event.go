// Package event holds the pure-Go records that flow from the probes through
// identity to aggregation. Nothing here touches the kernel, so every later
// stage builds and tests on any OS without root.
package event

import (
	"net/netip"
	"syscall"
	"time"

	"github.com/stratanet/strata/probes/kind"
)

// Kind says what happened to a TCP socket: the kind of the TCP probes'
// record (probes/kind, generated from the BPF programs' definition).
type Kind uint8

const (
	Connect       Kind = kind.TCPConnect       // client handshake completed
	ConnectFailed Kind = kind.TCPConnectFail   // client handshake failed; Err says why
	Accept        Kind = kind.TCPAccept        // server handshake completed
	Close         Kind = kind.TCPClose         // an established connection ended; Counters are final
	Listen        Kind = kind.TCPListen        // a socket started listening; PID/Comm own it
	ListenClose   Kind = kind.TCPListenClose   // a listening socket closed
	Snapshot      Kind = kind.TCPSnapshot      // periodic counters of a live socket
	SweepEnd      Kind = kind.TCPSweepEnd      // the snapshots of one network namespace are complete
	Retransmit    Kind = kind.TCPRetransmit    // one segment was retransmitted
	ResetSent     Kind = kind.TCPResetSent     // this end sent a RST
	ResetReceived Kind = kind.TCPResetReceived // this end received a RST
)

var kindNames = [...]string{"", "connect", "connect_failed", "accept", "close", "listen",
	"listen_close", "snapshot", "sweep_end", "retransmit", "reset_sent", "reset_received"}

func (k Kind) String() string {
	if int(k) < len(kindNames) {
		return kindNames[k]
	}
	return "unknown"
}

// TCP states as the kernel numbers them (include/net/tcp_states.h).
const (
	StateEstablished uint8 = 1
	StateSynSent     uint8 = 2
	StateSynRecv     uint8 = 3
	StateFinWait1    uint8 = 4
	StateFinWait2    uint8 = 5
	StateTimeWait    uint8 = 6
	StateClose       uint8 = 7
	StateCloseWait   uint8 = 8
	StateLastAck     uint8 = 9
	StateListen      uint8 = 10
	StateClosing     uint8 = 11
)

// Counters are a socket's cumulative totals as the application sees them:
// payload bytes only (the SYN and FIN sequence numbers taken out).
type Counters struct {
	SentBytes     uint64 // acknowledged by the peer
	ReceivedBytes uint64
	Retransmits   uint64 // retransmitted segments
	SRTT          time.Duration
}

// TCP is one decoded kernel record.
type TCP struct {
	Kind   Kind
	Mono   uint64 // kernel monotonic time, ns
	Sock   uint64 // kernel socket address; unique while the socket lives
	Netns  uint32 // network namespace inode
	Inode  uint64 // socket inode, 0 if the socket has no file (yet)
	PID    uint32 // owning process where the kernel ran in its context, else 0
	Comm   string
	Local  netip.AddrPort
	Remote netip.AddrPort
	State  uint8 // state after the event (snapshots: current state)
	Err    syscall.Errno
	Counters
	Sweep uint32 // sweep generation (Snapshot, SweepEnd)
	Drops uint64 // SweepEnd: snapshots lost so far
}

// HTTP is the start of one HTTP/1.x request or response as a socket call
// moved it: who, which socket, which way, and its first bytes. Where the
// kernel paired a request with its response, one HTTP is both: a request
// with Ended set.
type HTTP struct {
	Mono     uint64 // kernel monotonic time, ns
	Sock     uint64
	PID      uint32
	Comm     string
	Netns    uint32
	Local    netip.AddrPort
	Remote   netip.AddrPort
	Response bool   // else a request
	Received bool   // read from the socket, else written to it
	Size     uint32 // bytes of the call
	// What the first bytes say; Valid is false when they were not HTTP after all.
	Valid       bool
	Method      string // requests
	Path        string // requests, without query
	Traceparent string // requests, when the header came within the first bytes
	Status      int    // responses, and requests paired in the kernel (0: unanswered)
	// Ended is the kernel time of a paired request's response, or of its
	// connection's close when it went unanswered; 0 on lone records.
	Ended uint64
	// Slot, when not 0, says this exchange is the first of the socket's
	// tally slot Slot-1: the socket's later HTTPTally records count more
	// exchanges like it (same direction, method, route and status) in that
	// slot. Cookie is the socket's, which tallies carry too.
	Slot   int
	Cookie uint64
}

// HTTPBuckets are the upper bounds, in seconds, of the HTTP latency
// histograms; the kernel counts tallied exchanges in the same buckets.
var HTTPBuckets = []float64{.0005, .001, .0025, .005, .01, .025, .05, .075, .1, .25, .5, .75, 1, 2.5, 5, 7.5, 10}

// HTTPTally is what the kernel counted on one socket since its last tally:
// exchanges not sent one by one, per slot. Final is the socket's last.
type HTTPTally struct {
	Sock   uint64
	Cookie uint64
	Netns  uint32
	Local  uint16 // ports, for a reader of the record (0 once the socket closed)
	Remote uint16
	Final  bool
	Slots  [TallySlots]TallySlot
}

// TallySlots is how many slots a socket has.
const TallySlots = 4

// TallySlot is one slot's exchanges: Counts per bucket of HTTPBuckets (the
// last one beyond them), and their summed latency. Used is false for a
// slot no exchange opened.
type TallySlot struct {
	Used   bool
	Status int
	Counts [17 + 1]uint32
	Sum    uint64 // ns
}

// Total is how many exchanges the slot counted.
func (s *TallySlot) Total() uint64 {
	var n uint64
	for _, c := range s.Counts {
		n += uint64(c)
	}
	return n
}

// DNS is one DNS message a client sent to port 53 (a query) or received
// from it (a response), on UDP or TCP.
type DNS struct {
	Mono     uint64 // kernel monotonic time, ns
	PID      uint32
	Comm     string
	Netns    uint32         // the client socket's network namespace
	Local    netip.AddrPort // the client's end (unspecified address on an unbound socket)
	Remote   netip.AddrPort // the server's end
	TCP      bool
	Response bool   // received; else a query sent
	Size     uint32 // bytes of the whole message
	Msg      []byte // its first bytes (at most 512), owned by the event
}

// Record is one record of the kernel's ring, in the order the kernel made
// them: an HTTP event, a DNS one or an HTTP tally when that pointer is set,
// else a TCP event. The rarer families sit behind pointers so that a
// record waiting in the agent's queue costs what a TCP event does (216
// bytes, against 552 with all three inline): a storm's backlog is TCP.
type Record struct {
	TCP   TCP
	HTTP  *HTTP
	DNS   *DNS
	Tally *HTTPTally
}

// IsTCP: no other family's pointer is set.
func (r *Record) IsTCP() bool { return r.HTTP == nil && r.DNS == nil && r.Tally == nil }
