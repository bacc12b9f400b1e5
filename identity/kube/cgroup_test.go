package kube

import (
	"testing"

	"k8s.io/apimachinery/pkg/types"
)

func TestPodUID(t *testing.T) {
	const want = types.UID("3f8b1c2a-9d4e-4f6a-8b7c-1d2e3f4a5b6c")
	for _, tc := range []struct {
		path string
		want types.UID
	}{
		// cgroupfs driver, v1 and v2, each QoS class.
		{"/kubepods/burstable/pod3f8b1c2a-9d4e-4f6a-8b7c-1d2e3f4a5b6c/8d1e0c4a9f", want},
		{"/kubepods/pod3f8b1c2a-9d4e-4f6a-8b7c-1d2e3f4a5b6c/8d1e0c4a9f", want},
		{"/kubepods/besteffort/pod3f8b1c2a-9d4e-4f6a-8b7c-1d2e3f4a5b6c", want},
		// systemd driver.
		{"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod3f8b1c2a_9d4e_4f6a_8b7c_1d2e3f4a5b6c.slice/cri-containerd-8d1e0c4a9f.scope", want},
		{"/kubepods.slice/kubepods-pod3f8b1c2a_9d4e_4f6a_8b7c_1d2e3f4a5b6c.slice/crio-8d1e0c4a9f.scope", want},
		// kind and other nested layouts.
		{"/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod3f8b1c2a_9d4e_4f6a_8b7c_1d2e3f4a5b6c.slice/cri-containerd-8d1e.scope", want},
		// Not pods.
		{"/kubepods.slice/kubepods-burstable.slice", ""},
		{"/system.slice/containerd.service", ""},
		{"/user.slice/user-1000.slice/session-2.scope", ""},
		{"/kubepods/burstable/pod3f8b1c2a-9d4e-4f6a-8b7c", ""},                 // truncated
		{"/kubepods/burstable/pod3f8b1c2a-9d4e-4f6a-8b7c-1d2e3f4a5b6z/x", ""},  // not hex
		{"/kubepods/burstable/pod3f8b1c2a_9d4e-4f6a-8b7c-1d2e3f4a5b6c0/x", ""}, // too long
		{"", ""},
	} {
		got, ok := PodUID(tc.path)
		if got != tc.want || ok != (tc.want != "") {
			t.Errorf("PodUID(%q) = %q, %v; want %q", tc.path, got, ok, tc.want)
		}
	}
}
