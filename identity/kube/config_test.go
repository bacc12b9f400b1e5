package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfig(t *testing.T) {
	dir := t.TempDir()
	kubeconfig := filepath.Join(dir, "config")
	if err := os.WriteFile(kubeconfig, []byte(`apiVersion: v1
kind: Config
clusters:
- name: lab
  cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}
users:
- name: agent
  user: {token: secret-token}
contexts:
- name: lab
  context: {cluster: lab, user: agent}
current-context: lab
`), 0o600); err != nil {
		t.Fatal(err)
	}

	t.Run("kubeconfig", func(t *testing.T) {
		t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1") // a file given wins over the pod's account
		cfg, err := Config(kubeconfig)
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Host != "https://10.0.0.1:6443" || cfg.BearerToken != "secret-token" || cfg.UserAgent != "strata-agent" {
			t.Errorf("got host %q token %q user agent %q", cfg.Host, cfg.BearerToken, cfg.UserAgent)
		}
		if cfg.ContentType != "application/vnd.kubernetes.protobuf" || cfg.AcceptContentTypes != "application/vnd.kubernetes.protobuf,application/json" {
			t.Errorf("content type %q, accept %q: want protobuf first", cfg.ContentType, cfg.AcceptContentTypes)
		}
	})
	t.Run("missing kubeconfig", func(t *testing.T) {
		missing := filepath.Join(dir, "nope")
		_, err := Config(missing)
		if err == nil || !strings.HasPrefix(err.Error(), "kubeconfig "+missing+": ") {
			t.Errorf("got %v, want an error naming %s", err, missing)
		}
	})
	t.Run("neither", func(t *testing.T) {
		t.Setenv("KUBERNETES_SERVICE_HOST", "")
		_, err := Config("")
		if want := "no Kubernetes API server: not in a pod (KUBERNETES_SERVICE_HOST is unset) and no kubeconfig given"; err == nil || err.Error() != want {
			t.Errorf("got %v, want %q", err, want)
		}
	})
	t.Run("in cluster without a service account", func(t *testing.T) {
		if _, err := os.Stat("/var/run/secrets/kubernetes.io/serviceaccount/token"); err == nil {
			t.Skip("this machine has a service account token")
		}
		t.Setenv("KUBERNETES_SERVICE_HOST", "10.96.0.1")
		t.Setenv("KUBERNETES_SERVICE_PORT", "443")
		_, err := Config("")
		if err == nil || !strings.HasPrefix(err.Error(), "in-cluster Kubernetes config (service account of the pod): ") ||
			!strings.Contains(err.Error(), "/var/run/secrets/kubernetes.io/serviceaccount/token") {
			t.Errorf("got %v, want the missing token named", err)
		}
	})
}
