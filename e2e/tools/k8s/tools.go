//go:build tools

// Package tools pins the Kubernetes control plane the end-to-end cluster
// runs (kube-apiserver, kube-controller-manager) and kubectl, built from the
// k8s.io/kubernetes module. A module of its own keeps them out of the
// agent's go.mod; the replace lines pin the staging modules to the release.
package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
