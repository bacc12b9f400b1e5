package tcp

import (
	"errors"
	"syscall"
	"time"
	"unsafe"

	"github.com/stratanet/strata/probes/event"
	"github.com/stratanet/strata/probes/fields"
	"github.com/stratanet/strata/probes/kind"
)

// record is the kernel's struct tcp_record, generated from the C source.
type record = stateTcpRecord

var recordSize = int(unsafe.Sizeof(record{}))

var errShort = errors.New("tcp: short record")

// Decode turns one ring-buffer sample into an event. It never trusts the
// sample's size or contents beyond what the layout allows.
func Decode(raw []byte) (event.TCP, error) {
	if len(raw) < recordSize {
		return event.TCP{}, errShort
	}
	// The sample is the C struct byte for byte, in the host's byte order.
	var r record
	copy(unsafe.Slice((*byte)(unsafe.Pointer(&r)), recordSize), raw)
	return fromRecord(&r)
}

func fromRecord(r *record) (event.TCP, error) {
	if !kind.IsTCP(r.Kind) {
		return event.TCP{}, errors.New("tcp: unknown record kind")
	}
	k := event.Kind(r.Kind)
	e := event.TCP{
		Kind:  k,
		Mono:  r.TsNs,
		Sock:  r.Sk,
		Netns: r.Netns,
		Inode: r.Ino,
		PID:   r.Pid,
		State: r.Newstate,
		Sweep: r.Sweep,
		Drops: uint64(r.Drops),
	}
	if k == event.SweepEnd {
		return e, nil
	}
	if r.Pid != 0 { // comm is only filled where the owner ran
		e.Comm = string(fields.Comm(r.Comm[:]))
	}
	var ok bool
	if e.Local, ok = fields.AddrPort(r.Family, r.Saddr, r.Sport); !ok {
		return event.TCP{}, errors.New("tcp: unknown address family")
	}
	e.Remote, _ = fields.AddrPort(r.Family, r.Daddr, r.Dport)
	if r.Err < 0 {
		e.Err = syscall.Errno(-r.Err)
	} else {
		e.Err = syscall.Errno(r.Err)
	}
	switch k {
	case event.Connect, event.ConnectFailed, event.Accept, event.Close, event.Snapshot:
		e.Counters = payload(r, k)
	}
	return e, nil
}

// payload converts the kernel's sequence-space counters into application
// bytes by taking out the FINs: ours counts once the peer acknowledged it,
// the peer's once it was taken in. The client's SYN is also in bytes_acked,
// but it is already there at Connect, the agent's baseline for the socket.
func payload(r *record, k event.Kind) event.Counters {
	sent, recv := r.BytesAcked, r.BytesReceived
	if finSent(r, k) && r.SndUna == r.WriteSeq && sent > 0 {
		sent--
	}
	if r.FinReceived != 0 && recv > 0 {
		recv--
	}
	return event.Counters{
		SentBytes:     sent,
		ReceivedBytes: recv,
		Retransmits:   uint64(r.TotalRetrans),
		SRTT:          time.Duration(r.SrttUs) * time.Microsecond,
	}
}

// finSent: the socket is (for a close record: was) in a state reached only
// after sending a FIN.
func finSent(r *record, k event.Kind) bool {
	s := r.Newstate
	if k == event.Close {
		s = r.Oldstate
	}
	switch s {
	case event.StateFinWait1, event.StateFinWait2, event.StateClosing, event.StateLastAck:
		return true
	}
	return false
}
