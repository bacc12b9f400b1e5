package kube

import (
	"errors"
	"fmt"
	"os"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

const protobuf = "application/vnd.kubernetes.protobuf"

// Config finds the API server: the pod's service account when kubeconfig
// is empty and the agent runs in a pod (KUBERNETES_SERVICE_HOST is set),
// else the kubeconfig file. There is no guessing from $KUBECONFIG or
// ~/.kube/config: an agent should talk to the cluster it was told to.
func Config(kubeconfig string) (*rest.Config, error) {
	var cfg *rest.Config
	var err error
	switch {
	case kubeconfig != "":
		if cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig); err != nil {
			return nil, fmt.Errorf("kubeconfig %s: %w", kubeconfig, err)
		}
	case os.Getenv("KUBERNETES_SERVICE_HOST") != "":
		if cfg, err = rest.InClusterConfig(); err != nil {
			return nil, fmt.Errorf("in-cluster Kubernetes config (service account of the pod): %w", err)
		}
	default:
		return nil, errors.New("no Kubernetes API server: not in a pod (KUBERNETES_SERVICE_HOST is unset) and no kubeconfig given")
	}
	cfg.UserAgent = "strata-agent"
	// Protobuf, not JSON: the informers' lists of every pod of a large
	// cluster decode with a fraction of the garbage (and CPU), which is
	// most of the agent's memory peak at start and on a relist.
	cfg.ContentType = protobuf
	cfg.AcceptContentTypes = protobuf + ",application/json"
	return cfg, nil
}
