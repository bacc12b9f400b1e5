package process

import (
	"fmt"
	"maps"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/stratanet/strata/probes/netns"
)

// ProcHost reads namespaces and socket owners from /proc. Its calls block
// (setns, a readlink per fd): only a Worker's goroutines make them, one
// per kind of lookup, so the paths they share are locked.
type ProcHost struct {
	mu    sync.Mutex
	paths map[uint32]string // namespace -> a path entering it, from the last listing
}

func NewProcHost() *ProcHost { return &ProcHost{paths: map[uint32]string{}} }

func (h *ProcHost) NetnsAddrs(ns, pid uint32) ([]netip.Addr, error) {
	path, err := h.path(ns, pid)
	if err != nil {
		return nil, err
	}
	return netns.Addrs(path)
}

// path enters ns: through pid, else through the path found last time (if
// it still enters ns), else by listing every namespace once. The agent
// lists hundreds of namespaces at start; a listing of /proc each would be
// quadratic.
func (h *ProcHost) path(ns, pid uint32) (string, error) {
	if pid != 0 {
		p := "/proc/" + strconv.FormatUint(uint64(pid), 10) + "/ns/net"
		if ino, err := netns.Inode(p); err == nil && ino == ns {
			return p, nil
		}
	}
	h.mu.Lock()
	p, ok := h.paths[ns]
	h.mu.Unlock()
	if ok {
		if ino, err := netns.Inode(p); err == nil && ino == ns {
			return p, nil
		}
	}
	all, err := h.enumerate()
	if err != nil {
		return "", err
	}
	if p, ok := all[ns]; ok {
		return p, nil
	}
	return "", fmt.Errorf("network namespace %d: no process or mount enters it", ns)
}

// Cgroup reads the cgroup file of process pid.
func (h *ProcHost) Cgroup(pid uint32) ([]byte, error) {
	return os.ReadFile("/proc/" + strconv.FormatUint(uint64(pid), 10) + "/cgroup")
}

// Namespaces lists every network namespace a process or a mount enters.
func (h *ProcHost) Namespaces() ([]uint32, error) {
	all, err := h.enumerate()
	return slices.Collect(maps.Keys(all)), err
}

// enumerate lists the namespaces and keeps their paths for the next entry.
func (h *ProcHost) enumerate() (map[uint32]string, error) {
	all, err := netns.Enumerate()
	if err != nil {
		return nil, err
	}
	h.mu.Lock()
	h.paths = all
	h.mu.Unlock()
	return all, nil
}

// Owners maps every socket inode to the name of a process holding it, the
// way ss -p does.
func (h *ProcHost) Owners() (map[uint64]string, error) {
	owners := map[uint64]string{}
	procs, err := os.ReadDir("/proc")
	if err != nil {
		return nil, err
	}
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
	return owners, nil
}
