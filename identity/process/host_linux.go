package process

import (
	"net/netip"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/stratanet/strata/probes/netns"
)

// ProcHost reads namespaces and socket owners from /proc.
type ProcHost struct {
	owners  map[uint64]string // socket inode -> comm, from the last scan
	scanned time.Time
}

func NewProcHost() *ProcHost { return &ProcHost{} }

// Rescans of every process's fds are limited to this rate.
const rescanEvery = time.Second

func (h *ProcHost) NetnsAddrs(ns, pid uint32) ([]netip.Addr, error) {
	path, err := netns.Path(ns, pid)
	if err != nil {
		return nil, err
	}
	return netns.Addrs(path)
}

func (h *ProcHost) SocketOwner(inode uint64) (string, bool) {
	if inode == 0 {
		return "", false
	}
	if name, ok := h.owners[inode]; ok {
		return name, true
	}
	if time.Since(h.scanned) < rescanEvery {
		return "", false
	}
	h.scan()
	name, ok := h.owners[inode]
	return name, ok
}

// scan maps every socket inode to the name of a process holding it, the
// way ss -p does.
func (h *ProcHost) scan() {
	h.scanned = time.Now()
	owners := map[uint64]string{}
	procs, _ := os.ReadDir("/proc")
	for _, p := range procs {
		if _, err := strconv.Atoi(p.Name()); err != nil {
			continue
		}
		dir := "/proc/" + p.Name()
		fds, err := os.ReadDir(dir + "/fd")
		if err != nil {
			continue
		}
		var comm string
		for _, fd := range fds {
			link, err := os.Readlink(dir + "/fd/" + fd.Name())
			if err != nil || !strings.HasPrefix(link, "socket:[") {
				continue
			}
			ino, err := strconv.ParseUint(strings.TrimSuffix(link[len("socket:["):], "]"), 10, 64)
			if err != nil {
				continue
			}
			if comm == "" {
				b, _ := os.ReadFile(dir + "/comm")
				if comm = strings.TrimSpace(string(b)); comm == "" {
					break
				}
			}
			owners[ino] = comm
		}
	}
	h.owners = owners
}
