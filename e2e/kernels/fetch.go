package main

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

// A kernel of the matrix: a Debian cloud kernel package series.
type kernel struct {
	Series  string         // "6.1"
	Package *regexp.Regexp // the unsigned image packages of that series; the newest wins
}

var matrix = []kernel{
	{"5.10", regexp.MustCompile(`^linux-image-5\.10\.0-[0-9]+-cloud-amd64-unsigned$`)},
	{"6.1", regexp.MustCompile(`^linux-image-6\.1\.0-[0-9]+-cloud-amd64-unsigned$`)},
	{"6.12", regexp.MustCompile(`^linux-image-6\.12\.[0-9]+\+deb12-cloud-amd64-unsigned$`)},
}

// The archives the kernels come from, in an apt state of our own (the
// host's sources and package lists are left alone): Debian 12's kernels
// and Debian 11's 5.10 (bullseye-security's pool is not served here, its
// point release is).
const sources = `deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bookworm main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian-security bookworm-security main
deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian bullseye main
`

// unpacked is a kernel package extracted into the cache.
type unpacked struct {
	Series, Package string
	Release         string // uname -r
	Dir             string // the package's tree: boot/, lib/modules/<release>/
}

func (u unpacked) vmlinuz() string { return filepath.Join(u.Dir, "boot", "vmlinuz-"+u.Release) }
func (u unpacked) modules() string { return filepath.Join(u.Dir, "lib", "modules", u.Release) }

// aptCmd is apt-get or apt-cache on the cache's own state.
func aptCmd(cache, tool string, args ...string) *exec.Cmd {
	dir := filepath.Join(cache, "apt")
	opts := []string{
		"-o", "Dir::Etc::SourceList=" + filepath.Join(dir, "sources.list"),
		"-o", "Dir::Etc::SourceParts=/nonexistent",
		"-o", "Dir::State::Lists=" + filepath.Join(dir, "lists"),
		"-o", "Dir::Cache=" + filepath.Join(dir, "cache"),
		"-o", "Debug::NoLocking=1",
		"-o", "APT::Sandbox::User=root",
	}
	return exec.Command(tool, append(opts, args...)...)
}

func apt(cache, tool string, args ...string) ([]byte, error) {
	cmd := aptCmd(cache, tool, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %v: %s", tool, strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// refresh updates the package lists at most once a day.
func refresh(cache string) error {
	dir := filepath.Join(cache, "apt")
	for _, d := range []string{"lists/partial", "cache/archives/partial"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return err
		}
	}
	list := filepath.Join(dir, "sources.list")
	old, _ := os.ReadFile(list)
	stamp := filepath.Join(dir, "updated")
	if st, err := os.Stat(stamp); err == nil && string(old) == sources && time.Since(st.ModTime()) < 24*time.Hour {
		return nil
	}
	if err := os.WriteFile(list, []byte(sources), 0o644); err != nil {
		return err
	}
	if _, err := apt(cache, "apt-get", "update"); err != nil {
		return err
	}
	return os.WriteFile(stamp, nil, 0o644)
}

// fetch returns the newest package of k's series, downloaded and unpacked
// into the cache once (dpkg-deb -x: nothing is installed), with a
// modules.dep of its own so that modprobe works inside the VM.
func fetch(cache string, k kernel) (unpacked, error) {
	u := unpacked{Series: k.Series}
	if err := refresh(cache); err != nil {
		// Offline: any package of the series unpacked earlier will do.
		if u, ok := cached(cache, k); ok {
			return u, nil
		}
		return u, err
	}
	out, err := apt(cache, "apt-cache", "search", "--names-only", k.Package.String())
	if err != nil {
		return u, err
	}
	var names []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if name, _, _ := strings.Cut(sc.Text(), " "); k.Package.MatchString(name) {
			names = append(names, name)
		}
	}
	if len(names) == 0 {
		return u, fmt.Errorf("kernel %s: no package matches %s in the Debian archive", k.Series, k.Package)
	}
	sort.Slice(names, func(i, j int) bool { return versionLess(names[i], names[j]) })
	u.Package = names[len(names)-1]
	u.Dir = filepath.Join(cache, u.Package)
	if _, err := os.Stat(filepath.Join(u.Dir, ".unpacked")); err != nil {
		if err := unpack(cache, u); err != nil {
			return u, err
		}
		prune(cache, k, u.Package)
	}
	return release(u)
}

// prune removes the series' older packages: a security update brings a new
// package name (ABI number) every few weeks, ~100 MB unpacked each.
func prune(cache string, k kernel, keep string) {
	ents, _ := os.ReadDir(cache)
	for _, e := range ents {
		if e.Name() != keep && k.Package.MatchString(e.Name()) {
			os.RemoveAll(filepath.Join(cache, e.Name()))
		}
	}
}

func unpack(cache string, u unpacked) error {
	debs := filepath.Join(cache, "debs")
	if err := os.MkdirAll(debs, 0o755); err != nil {
		return err
	}
	cmd := aptCmd(cache, "apt-get", "download", u.Package)
	cmd.Dir = debs // apt-get download writes into the working directory
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("apt-get download %s: %v\n%s", u.Package, err, out)
	}
	matches, _ := filepath.Glob(filepath.Join(debs, u.Package+"_*.deb"))
	if len(matches) == 0 {
		return fmt.Errorf("apt-get download %s: no .deb", u.Package)
	}
	tmp := u.Dir + ".tmp"
	os.RemoveAll(tmp)
	if out, err := exec.Command("dpkg-deb", "-x", matches[len(matches)-1], tmp).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg-deb -x %s: %v\n%s", matches[0], err, out)
	}
	u.Dir = tmp
	u, err := release(u)
	if err != nil {
		return err
	}
	if out, err := exec.Command("depmod", "-b", tmp, u.Release).CombinedOutput(); err != nil {
		return fmt.Errorf("depmod %s: %v\n%s", u.Release, err, out)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".unpacked"), nil, 0o644); err != nil {
		return err
	}
	for _, m := range matches {
		os.Remove(m) // the tree is what we keep
	}
	os.RemoveAll(filepath.Join(cache, u.Package))
	return os.Rename(tmp, filepath.Join(cache, u.Package))
}

// release finds the kernel release (uname -r) of an unpacked package.
func release(u unpacked) (unpacked, error) {
	ents, err := os.ReadDir(filepath.Join(u.Dir, "lib", "modules"))
	if err != nil || len(ents) != 1 {
		return u, fmt.Errorf("%s: expected one lib/modules/<release> (%v)", u.Dir, err)
	}
	u.Release = ents[0].Name()
	return u, nil
}

func cached(cache string, k kernel) (unpacked, bool) {
	ents, _ := os.ReadDir(cache)
	var best string
	for _, e := range ents {
		if _, err := os.Stat(filepath.Join(cache, e.Name(), ".unpacked")); err == nil && k.Package.MatchString(e.Name()) {
			if best == "" || versionLess(best, e.Name()) {
				best = e.Name()
			}
		}
	}
	if best == "" {
		return unpacked{}, false
	}
	u, err := release(unpacked{Series: k.Series, Package: best, Dir: filepath.Join(cache, best)})
	return u, err == nil
}

var digits = regexp.MustCompile(`[0-9]+|[^0-9]+`)

// versionLess compares names as sort -V does: digit runs as numbers.
func versionLess(a, b string) bool {
	pa, pb := digits.FindAllString(a, -1), digits.FindAllString(b, -1)
	for i := 0; i < len(pa) && i < len(pb); i++ {
		if pa[i] == pb[i] {
			continue
		}
		na, ea := strconv.Atoi(pa[i])
		nb, eb := strconv.Atoi(pb[i])
		if ea == nil && eb == nil {
			return na < nb
		}
		return pa[i] < pb[i]
	}
	return len(pa) < len(pb)
}
