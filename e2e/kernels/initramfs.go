package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// bootModules are what the kernel needs to mount the host's root over
// virtiofs with an overlay; each kernel has some built in, and those are
// skipped. Their dependencies come along, loaded first (modules.dep).
var bootModules = []string{"virtio_pci", "virtiofs", "overlay"}

// initramfs writes a newc cpio archive holding vminit as /init and the
// boot modules of u (decompressed: not every kernel reads .ko.xz).
func initramfs(u unpacked, vminit, out string) error {
	var files []cpioFile
	for _, d := range []string{"dev", "proc", "rw", "host", "newroot", "modules"} {
		files = append(files, cpioFile{name: d, mode: 0o40755})
	}
	files = append(files, cpioFile{name: "dev/console", mode: 0o20600, rdev: [2]uint32{5, 1}})
	init, err := os.ReadFile(vminit)
	if err != nil {
		return err
	}
	files = append(files, cpioFile{name: "init", mode: 0o100755, data: init})
	paths, err := moduleOrder(u.modules(), bootModules)
	if err != nil {
		return err
	}
	var order []string
	for _, p := range paths {
		data, err := readModule(filepath.Join(u.modules(), p))
		if err != nil {
			return err
		}
		name := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(p), ".xz"), ".zst")
		files = append(files, cpioFile{name: "modules/" + name, mode: 0o100644, data: data})
		order = append(order, name)
	}
	files = append(files, cpioFile{name: "modules/order", mode: 0o100644, data: []byte(strings.Join(order, "\n") + "\n")})
	f, err := os.Create(out)
	if err != nil {
		return err
	}
	if err := writeCpio(f, files); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// moduleOrder lists the module files (relative to dir) of the named
// modules that are not built in, each after its dependencies.
func moduleOrder(dir string, names []string) ([]string, error) {
	b, err := os.ReadFile(filepath.Join(dir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	deps := map[string][]string{} // module file -> the files it needs
	byName := map[string]string{} // module name -> its file
	for _, l := range strings.Split(string(b), "\n") {
		file, rest, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		deps[file] = strings.Fields(rest)
		base := filepath.Base(file)
		byName[base[:strings.Index(base, ".ko")]] = file
	}
	var order []string
	seen := map[string]bool{}
	var add func(string)
	add = func(file string) {
		if seen[file] {
			return
		}
		seen[file] = true
		for _, d := range deps[file] {
			add(d)
		}
		order = append(order, file)
	}
	for _, n := range names {
		if file, ok := byName[n]; ok {
			add(file)
		}
	}
	return order, nil
}

func readModule(path string) ([]byte, error) {
	switch {
	case strings.HasSuffix(path, ".xz"):
		return exec.Command("xz", "-dc", path).Output()
	case strings.HasSuffix(path, ".zst"):
		return exec.Command("zstd", "-dc", path).Output()
	}
	return os.ReadFile(path)
}

type cpioFile struct {
	name string
	mode uint32
	rdev [2]uint32
	data []byte
}

// writeCpio writes the "newc" format the kernel unpacks into its rootfs.
func writeCpio(w io.Writer, files []cpioFile) error {
	var buf bytes.Buffer
	pad := func() {
		for buf.Len()%4 != 0 {
			buf.WriteByte(0)
		}
	}
	for i, f := range append(files, cpioFile{name: "TRAILER!!!"}) {
		nlink := 1
		if f.mode&0o170000 == 0o40000 {
			nlink = 2
		}
		fmt.Fprintf(&buf, "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
			i+1, f.mode, 0, 0, nlink, 0, len(f.data), 0, 0, f.rdev[0], f.rdev[1], len(f.name)+1, 0)
		buf.WriteString(f.name)
		buf.WriteByte(0)
		pad()
		buf.Write(f.data)
		pad()
	}
	_, err := w.Write(buf.Bytes())
	return err
}
