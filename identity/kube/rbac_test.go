package kube

import (
	"errors"
	"io"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/util/yaml"
	"k8s.io/client-go/kubernetes/fake"
)

// TestClusterRoleIsWhatTheInformersUse: the shipped ClusterRole grants
// exactly the kinds and verbs the Cache asks the API server for, no more
// (least privilege) and no less (a watch refused is a name never learned).
// The agent's one other call, GET /version at start, is open to every
// authenticated user (system:public-info-viewer).
func TestClusterRoleIsWhatTheInformersUse(t *testing.T) {
	client := fake.NewClientset()
	startClient(t, client, Options{}, time.Now)
	used := map[string]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(used) < 10 && time.Now().Before(deadline) { // each informer lists, then watches
		for _, a := range client.Actions() {
			r := a.GetResource()
			used[r.Group+"/"+r.Resource+":"+a.GetVerb()] = true
		}
		time.Sleep(50 * time.Millisecond)
	}

	granted := map[string]bool{}
	for _, rule := range clusterRole(t, "../../manifests/rbac.yaml").Rules {
		if len(rule.ResourceNames) > 0 || len(rule.NonResourceURLs) > 0 {
			t.Errorf("rule %v: the agent names no objects or URLs", rule)
		}
		for _, g := range rule.APIGroups {
			for _, r := range rule.Resources {
				for _, v := range rule.Verbs {
					granted[g+"/"+r+":"+v] = true
				}
			}
		}
	}
	keys := func(m map[string]bool) []string {
		var s []string
		for k := range m {
			s = append(s, k)
		}
		slices.Sort(s)
		return s
	}
	if got, want := keys(granted), keys(used); !slices.Equal(got, want) {
		t.Errorf("ClusterRole grants\n  %s\nthe informers use\n  %s", strings.Join(got, " "), strings.Join(want, " "))
	}
	if len(used) != 10 {
		t.Errorf("the informers made %d kinds of request, want 10 (list and watch of 5 kinds): %v", len(used), keys(used))
	}
}

// clusterRole reads the one ClusterRole in a multi-document manifest.
func clusterRole(t *testing.T, path string) rbacv1.ClusterRole {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	d := yaml.NewYAMLOrJSONDecoder(f, 4096)
	var found []rbacv1.ClusterRole
	for {
		var role rbacv1.ClusterRole
		if err := d.Decode(&role); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if role.Kind == "ClusterRole" {
			found = append(found, role)
		}
	}
	if len(found) != 1 {
		t.Fatalf("%s: %d ClusterRoles, want 1", path, len(found))
	}
	return found[0]
}
