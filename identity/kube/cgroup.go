package kube

import (
	"strings"

	"k8s.io/apimachinery/pkg/types"
)

// PodUID finds the pod UID in a cgroup path, as the kubelet lays them out:
//
//	cgroupfs: /kubepods/burstable/pod3f8b1c2a-9d4e-4f6a-8b7c-1d2e3f4a5b6c/<container>
//	systemd:  /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod3f8b1c2a_9d4e_4f6a_8b7c_1d2e3f4a5b6c.slice/cri-containerd-<container>.scope
//
// (systemd unit names cannot hold dashes inside a name part, hence the
// underscores).
func PodUID(cgroupPath string) (types.UID, bool) {
	for seg := range strings.SplitSeq(cgroupPath, "/") {
		seg = strings.TrimSuffix(seg, ".slice")
		// "kubepods" holds "pod" too, so take the last one; a UID is
		// hexadecimal and cannot hold another.
		i := strings.LastIndex(seg, "pod")
		if i < 0 {
			continue
		}
		if uid := strings.ReplaceAll(seg[i+len("pod"):], "_", "-"); isUID(uid) {
			return types.UID(uid), true
		}
	}
	return "", false
}

// isUID: 8-4-4-4-12 hexadecimal digits.
func isUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range []byte(s) {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}
