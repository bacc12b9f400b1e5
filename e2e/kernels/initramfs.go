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
// virtiofs with an overlay, dependencies first; each kernel has some built
// in, and those are skipped.
var bootModules = []string{
	"virtio", "virtio_ring", "virtio_pci_legacy_dev", "virtio_pci_modern_dev", "virtio_pci",
	"fuse", "virtiofs", "overlay",
}

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
	var order []string
	for _, m := range bootModules {
		path, err := findModule(u.modules(), m)
		if err != nil {
			return err
		}
		if path == "" {
			continue // built in
		}
		data, err := readModule(path)
		if err != nil {
			return err
		}
		files = append(files, cpioFile{name: "modules/" + m + ".ko", mode: 0o100644, data: data})
		order = append(order, m+".ko")
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

// findModule is the path of module name under dir, "" when the kernel has
// no such module file (built in, or not needed by this kernel).
func findModule(dir, name string) (string, error) {
	var found string
	err := filepath.WalkDir(filepath.Join(dir, "kernel"), func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		base := d.Name()
		if base == name+".ko" || base == name+".ko.xz" || base == name+".ko.zst" {
			found = p
			return filepath.SkipAll
		}
		return nil
	})
	return found, err
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
