// Command kernels runs the probes on other kernels (make test-kernels):
// for each Debian cloud kernel of the matrix it boots a qemu VM on the
// host's own root, runs the probes' test binaries, asks the agent which
// mode each probe took, and runs a short end-to-end scenario; then prints
// one table row per kernel and writes the table to docs/kernels.md.
//
// Run it from the repository's root, as root.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

func main() {
	kernels := flag.String("kernels", "5.10,6.1,6.12", "kernel series to boot, comma-separated")
	cache := flag.String("cache", "/var/cache/strata/kernels", "where kernel packages are unpacked, kept between runs")
	out := flag.String("out", "", "also write the table to this Markdown file")
	mem := flag.String("memory", "3G", "VM memory")
	cpus := flag.Int("cpus", 2, "VM vCPUs")
	timeout := flag.Duration("timeout", 45*time.Minute, "per VM")
	only := flag.String("only", "", "run only the guest's steps matching this regexp (probes-tcp, modes, e2e-http, ...)")
	flag.Parse()
	if *only != "" && *out != "" {
		fmt.Fprintln(os.Stderr, "test-kernels: -only makes a partial table; not writing it to", *out)
		*out = ""
	}
	if err := run(*kernels, *cache, *out, *mem, *cpus, *timeout, *only); err != nil {
		fmt.Fprintln(os.Stderr, "test-kernels:", err)
		os.Exit(1)
	}
}

func run(series, cache, out, mem string, cpus int, timeout time.Duration, only string) error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("needs root (virtiofsd shares the host's root; the tests load BPF in the VM)")
	}
	for _, tool := range []string{"qemu-system-x86_64", "/usr/lib/qemu/virtiofsd", "apt-get", "dpkg-deb", "depmod", "xz"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("%s not found: make deps installs it (qemu-system-x86, kmod, xz-utils)", tool)
		}
	}
	var ks []kernel
	for _, s := range strings.Split(series, ",") {
		k, ok := find(s)
		if !ok {
			return fmt.Errorf("no kernel series %q in the matrix", s)
		}
		ks = append(ks, k)
	}
	repo, err := os.Getwd()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	// A run killed before its clean-up left its binaries; none lasts 3 hours.
	if old, _ := filepath.Glob(filepath.Join(cache, "run-*")); len(old) > 0 {
		for _, d := range old {
			if st, err := os.Stat(d); err == nil && time.Since(st.ModTime()) > 3*time.Hour {
				os.RemoveAll(d)
			}
		}
	}
	bin, err := os.MkdirTemp(cache, "run-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(bin)
	start := time.Now()
	if err := build(bin); err != nil {
		return err
	}
	fmt.Printf("built the test binaries in %s\n", time.Since(start).Round(time.Second))
	// A copy: bash reads a script as it goes, and the tree may change meanwhile.
	guest := filepath.Join(bin, "guest.sh")
	if b, err := os.ReadFile(filepath.Join(repo, "e2e/kernels/guest.sh")); err != nil {
		return err
	} else if err := os.WriteFile(guest, b, 0o755); err != nil {
		return err
	}

	var rows []row
	failed := false
	for _, k := range ks {
		r := row{Series: k.Series, Partial: only != ""}
		u, err := fetch(cache, k)
		if err != nil {
			return err
		}
		r.Release = u.Release
		img := filepath.Join(bin, "initramfs-"+k.Series)
		if err := initramfs(u, filepath.Join(bin, "vminit"), img); err != nil {
			return fmt.Errorf("initramfs for %s: %w", u.Release, err)
		}
		v := vm{Kernel: u, Initramfs: img, Memory: mem, CPUs: cpus, Timeout: timeout,
			Command: []string{guest, bin, repo},
			Env:     []string{"STRATA_MODULES=" + u.modules(), "CI=" + os.Getenv("CI"), "STRATA_ONLY=" + only}}
		fmt.Printf("== %s (%s): booting\n", k.Series, u.Package)
		t0 := time.Now()
		code, err := v.run(context.Background(), bin, func(l string) {
			r.parse(l)
			fmt.Printf("[%s] %s\n", k.Series, l)
		})
		r.Duration = time.Since(t0)
		if err != nil {
			r.Err = err.Error()
		} else if code != 0 {
			r.Err = fmt.Sprintf("guest exited %d", code)
		}
		if !r.ok() {
			failed = true
		}
		fmt.Printf("== %s: %s in %s\n", k.Series, r.verdict(), r.Duration.Round(time.Second))
		rows = append(rows, r)
	}
	table := render(rows)
	fmt.Print("\n" + table)
	if out != "" {
		if err := writeDoc(out, table); err != nil {
			return err
		}
	}
	if failed {
		return fmt.Errorf("failures above")
	}
	return nil
}

func find(series string) (kernel, bool) {
	for _, k := range matrix {
		if k.Series == strings.TrimSpace(series) {
			return k, true
		}
	}
	return kernel{}, false
}

// build compiles what the guest runs: vminit (static), the agent and the
// test tools, and the test binaries of probes/... and of the end-to-end
// scenario's packages.
func build(dir string) error {
	gobuild := func(env []string, args ...string) error {
		cmd := exec.Command("go", args...)
		cmd.Env = append(os.Environ(), env...)
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("go %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return nil
	}
	if err := gobuild([]string{"CGO_ENABLED=0"}, "build", "-o", filepath.Join(dir, "vminit"), "./e2e/kernels/vminit"); err != nil {
		return err
	}
	for name, pkg := range map[string]string{
		"strata-agent": "./agent/cmd/strata-agent", "tcpserver": "./e2e/cmd/tcpserver", "tcpclient": "./e2e/cmd/tcpclient",
		"httpserver": "./e2e/cmd/httpserver", "httpclient": "./e2e/cmd/httpclient", "resolve": "./e2e/cmd/resolve",
	} {
		if err := gobuild(nil, "build", "-o", filepath.Join(dir, name), pkg); err != nil {
			return err
		}
	}
	out, err := exec.Command("go", "list", "-f", "{{if or .TestGoFiles .XTestGoFiles}}{{.Dir}}{{end}}", "./probes/...").Output()
	if err != nil {
		return fmt.Errorf("go list ./probes/...: %w", err)
	}
	// Named as go test names them: tests look for their own comm.
	for _, d := range strings.Fields(string(out)) {
		p := filepath.Base(d)
		if err := gobuild(nil, "test", "-c", "-o", filepath.Join(dir, "probes", p+".test"), "./probes/"+p); err != nil {
			return err
		}
	}
	for _, p := range []string{"tcp", "dns", "http"} {
		if err := gobuild(nil, "test", "-c", "-o", filepath.Join(dir, "e2e", p+".test"), "./e2e/"+p); err != nil {
			return err
		}
	}
	return nil
}
