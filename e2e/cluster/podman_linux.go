package cluster

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	authnv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Podman is a container runtime for the kubelet: a pod whose image it
// holds runs as a real container (runc), with what the pod spec asks and
// nothing more: its args and env, its volumes, hostPID, its network mode,
// its securityContext's capabilities, user, read-only root and
// no_new_privs, podman's default seccomp profile for RuntimeDefault, and
// its ServiceAccount's token for the API server. Pods with a placeholder
// image (local/tcpserver) still run their command in a namespace.
type Podman struct {
	t      T
	base   []string
	images map[string]bool
}

// NewPodman uses podman's state under dir (outside the repository: make
// image builds into the same store, so loading its archive is quick).
func NewPodman(t T, dir string) *Podman {
	t.Helper()
	for _, tool := range []string{"podman", "runc"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing(t, tool+" not installed: make deps")
		}
	}
	p := &Podman{t: t, images: map[string]bool{},
		base: []string{"--root", filepath.Join(dir, "storage"), "--runroot", filepath.Join(dir, "run"),
			"--storage-driver", "overlay", "--runtime", "runc"}}
	// A run killed before its cleanup (go test's timeout) leaves its
	// containers, an agent among them: end them (e2e runs hold the
	// machine's lock, so none is another run's).
	if out, err := p.run("ps", "-a", "-q", "--filter", "label=strata-e2e"); err == nil {
		for _, id := range strings.Fields(out) {
			p.run("rm", "-f", id)
		}
	}
	return p
}

func (p *Podman) run(args ...string) (string, error) {
	out, err := exec.Command("podman", append(append([]string{}, p.base...), args...)...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("podman %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Load loads an OCI archive and returns the image's name.
func (p *Podman) Load(archive string) string {
	p.t.Helper()
	if _, err := os.Stat(archive); err != nil {
		missing(p.t, fmt.Sprintf("image archive %s missing (%v): make image", archive, err))
	}
	out, err := p.run("load", "-i", archive)
	if err != nil {
		p.t.Fatalf("%v", err)
	}
	for _, line := range strings.Split(out, "\n") {
		if name, ok := strings.CutPrefix(line, "Loaded image: "); ok {
			name = strings.TrimSpace(strings.Split(name, ",")[0])
			p.images[name] = true
			return name
		}
	}
	p.t.Fatalf("podman load %s: no image name in %q", archive, out)
	return ""
}

// container is one pod's running container.
type container struct {
	p      *Podman
	name   string
	mu     sync.Mutex
	code   int
	exited bool
}

// RunContainers makes the kubelet run pods whose image p holds with p.
func (c *Cluster) RunContainers(p *Podman) {
	c.mu.Lock()
	c.podman = p
	c.mu.Unlock()
}

// startContainer runs a pod as a container; the namespace it gets when
// not on the host network is host (nil with hostNetwork).
func (c *Cluster) startContainer(p *corev1.Pod, host string) (*container, error) {
	spec := p.Spec
	if len(spec.Containers) != 1 || len(spec.InitContainers) > 0 {
		return nil, fmt.Errorf("pod %s: one container and no init containers supported", p.Name)
	}
	ctr := spec.Containers[0]
	name := "strata-e2e-" + string(p.UID)[:8]
	args := []string{"run", "-d", "--name", name, "--label", "strata-e2e=" + string(p.UID),
		// Root here lacks CAP_SYS_RESOURCE, so podman's default (raised)
		// rlimits fail; these are below the host's.
		"--ulimit", "nofile=10000:10000", "--ulimit", "nproc=1000:1000"}
	if spec.HostPID {
		args = append(args, "--pid=host")
	}
	if spec.HostNetwork {
		args = append(args, "--network=host")
	} else {
		args = append(args, "--network=ns:/run/netns/"+host)
	}
	sec, err := securityArgs(ctr.SecurityContext, spec.SecurityContext)
	if err != nil {
		return nil, fmt.Errorf("pod %s: %w", p.Name, err)
	}
	args = append(args, sec...)

	env, err := c.envOf(p, ctr)
	if err != nil {
		return nil, err
	}
	for _, e := range env {
		args = append(args, "--env", e)
	}
	mounts, err := c.mountsOf(p, ctr)
	if err != nil {
		return nil, err
	}
	args = append(args, mounts...)
	if len(ctr.Command) > 0 {
		args = append(args, "--entrypoint", ctr.Command[0])
	}
	args = append(args, ctr.Image)
	if len(ctr.Command) > 1 {
		args = append(args, ctr.Command[1:]...)
	}
	args = append(args, ctr.Args...)
	if out, err := c.podman.run(args...); err != nil {
		c.podman.run("rm", "-f", name)
		return nil, fmt.Errorf("%v %s", err, out)
	}
	k := &container{p: c.podman, name: name}
	go func() {
		out, err := exec.Command("podman", append(append([]string{}, c.podman.base...), "wait", name)...).Output()
		code, perr := strconv.Atoi(strings.TrimSpace(string(out)))
		if err != nil || perr != nil {
			code = -1
		}
		k.mu.Lock()
		k.code, k.exited = code, true
		k.mu.Unlock()
	}()
	return k, nil
}

// Exited reports whether the container ended and with what status.
func (k *container) Exited() (int, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	return k.code, k.exited
}

// Logs is the container's output so far.
func (k *container) Logs() string {
	if k.p == nil { // never started
		return ""
	}
	out, _ := k.p.run("logs", k.name)
	return out
}

// stop removes the container (SIGTERM, then after 10 s SIGKILL).
func (k *container) stop() {
	if k.p != nil {
		k.p.run("rm", "-f", "-t", "10", k.name)
	}
}

// securityArgs translates a container's securityContext; what it cannot
// honour exactly is an error rather than a looser container.
func securityArgs(sc *corev1.SecurityContext, pod *corev1.PodSecurityContext) ([]string, error) {
	args := []string{"--cap-drop=all"} // podman's defaults are not Kubernetes': start from none
	if sc == nil {
		return nil, fmt.Errorf("no securityContext: the runtime's default capabilities would apply")
	}
	if sc.Capabilities != nil {
		drop := strings.Join(capNames(sc.Capabilities.Drop), ",")
		if drop != "ALL" {
			return nil, fmt.Errorf("capabilities.drop %q: only [ALL] is supported", drop)
		}
		for _, add := range capNames(sc.Capabilities.Add) {
			args = append(args, "--cap-add="+add)
		}
	}
	if sc.Privileged != nil && *sc.Privileged {
		args = append(args, "--privileged")
	}
	if sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem {
		args = append(args, "--read-only", "--read-only-tmpfs=false")
	}
	if sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
		args = append(args, "--security-opt", "no-new-privileges")
	}
	uid := sc.RunAsUser
	if uid == nil && pod != nil {
		uid = pod.RunAsUser
	}
	if uid != nil {
		args = append(args, "--user", strconv.FormatInt(*uid, 10))
	}
	seccomp := sc.SeccompProfile
	if seccomp == nil && pod != nil {
		seccomp = pod.SeccompProfile
	}
	switch {
	case seccomp == nil:
		return nil, fmt.Errorf("no seccompProfile: Kubernetes would run it Unconfined, podman would not")
	case seccomp.Type == corev1.SeccompProfileTypeRuntimeDefault: // podman's default profile
	case seccomp.Type == corev1.SeccompProfileTypeUnconfined:
		args = append(args, "--security-opt", "seccomp=unconfined")
	default:
		return nil, fmt.Errorf("seccompProfile %s not supported", seccomp.Type)
	}
	return args, nil
}

func capNames(cs []corev1.Capability) []string {
	var s []string
	for _, c := range cs {
		s = append(s, strings.TrimPrefix(string(c), "CAP_"))
	}
	return s
}

// envOf resolves the container's environment as the kubelet would, plus
// where the API server is. On a real node a host-network pod reaches the
// kubernetes Service's ClusterIP through kube-proxy's rules; this node has
// none in its own namespace, so the kubelet names the server itself.
func (c *Cluster) envOf(p *corev1.Pod, ctr corev1.Container) ([]string, error) {
	host, port, _ := strings.Cut(c.apiAddr, ":")
	env := []string{"KUBERNETES_SERVICE_HOST=" + host, "KUBERNETES_SERVICE_PORT=" + port}
	for _, e := range ctr.Env {
		v := e.Value
		switch {
		case e.ValueFrom == nil:
		case e.ValueFrom.FieldRef != nil:
			switch e.ValueFrom.FieldRef.FieldPath {
			case "spec.nodeName":
				v = Node
			case "metadata.name":
				v = p.Name
			case "metadata.namespace":
				v = p.Namespace
			default:
				return nil, fmt.Errorf("env %s: field %s not supported", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
		case e.ValueFrom.ResourceFieldRef != nil:
			r := e.ValueFrom.ResourceFieldRef.Resource
			q, ok := ctr.Resources.Limits[corev1.ResourceName(strings.TrimPrefix(r, "limits."))]
			if !strings.HasPrefix(r, "limits.") || !ok {
				return nil, fmt.Errorf("env %s: resource %s not supported", e.Name, r)
			}
			v = strconv.FormatInt(q.Value(), 10)
		default:
			return nil, fmt.Errorf("env %s: valueFrom not supported", e.Name)
		}
		env = append(env, e.Name+"="+v)
	}
	return env, nil
}

// mountsOf makes the container's volumes: ConfigMaps as files, hostPaths
// as they are, and the ServiceAccount's token where client-go looks.
func (c *Cluster) mountsOf(p *corev1.Pod, ctr corev1.Container) ([]string, error) {
	ctx := context.Background()
	dir := filepath.Join(c.dir, "pods", string(p.UID))
	volumes := map[string]corev1.Volume{}
	for _, v := range p.Spec.Volumes {
		volumes[v.Name] = v
	}
	var args []string
	for _, m := range ctr.VolumeMounts {
		v, ok := volumes[m.Name]
		if !ok {
			return nil, fmt.Errorf("mount %s: no such volume", m.Name)
		}
		var src string
		switch {
		case v.HostPath != nil:
			src = v.HostPath.Path
		case v.ConfigMap != nil:
			cm, err := c.Client.CoreV1().ConfigMaps(p.Namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return nil, fmt.Errorf("mount %s: %w", m.Name, err)
			}
			src = filepath.Join(dir, m.Name)
			os.MkdirAll(src, 0o755)
			for file, data := range cm.Data {
				if err := os.WriteFile(filepath.Join(src, file), []byte(data), 0o644); err != nil {
					return nil, err
				}
			}
		default:
			return nil, fmt.Errorf("mount %s: volume kind not supported", m.Name)
		}
		opt := "rw"
		if m.ReadOnly {
			opt = "ro"
		}
		args = append(args, "-v", src+":"+m.MountPath+":"+opt)
	}
	if a := p.Spec.AutomountServiceAccountToken; a == nil || *a {
		sa := p.Spec.ServiceAccountName
		if sa == "" {
			sa = "default"
		}
		expiry := int64(3600)
		tr, err := c.Client.CoreV1().ServiceAccounts(p.Namespace).CreateToken(ctx, sa, &authnv1.TokenRequest{
			Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &expiry, BoundObjectRef: &authnv1.BoundObjectReference{
				Kind: "Pod", APIVersion: "v1", Name: p.Name, UID: p.UID}}}, metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("token for %s/%s: %w", p.Namespace, sa, err)
		}
		ca, err := os.ReadFile(filepath.Join(c.dir, "certs", "apiserver.crt"))
		if err != nil {
			return nil, err
		}
		src := filepath.Join(dir, "serviceaccount")
		os.MkdirAll(src, 0o755)
		for file, data := range map[string]string{"token": tr.Status.Token, "ca.crt": string(ca), "namespace": p.Namespace} {
			if err := os.WriteFile(filepath.Join(src, file), []byte(data), 0o644); err != nil {
				return nil, err
			}
		}
		args = append(args, "-v", src+":/var/run/secrets/kubernetes.io/serviceaccount:ro")
	}
	return args, nil
}

// ContainerPID is the host PID of the process a pod's container runs, or
// 0 if the pod runs no container here.
func (c *Cluster) ContainerPID(p corev1.Pod) int {
	c.mu.Lock()
	local := c.pods[string(p.UID)]
	c.mu.Unlock()
	if local == nil || local.ctr == nil || local.ctr.p == nil {
		return 0
	}
	out, err := local.ctr.p.run("inspect", "-f", "{{.State.Pid}}", local.ctr.name)
	if err != nil {
		return 0
	}
	pid, _ := strconv.Atoi(strings.TrimSpace(out))
	return pid
}
