package main

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

// vm is one boot of a kernel under qemu: TCG (no KVM needed), two vCPUs,
// the host's root shared read-only over virtiofs (the guest mounts it
// read-only under a tmpfs overlay, vminit), the console on stdio.
type vm struct {
	Kernel    unpacked
	Initramfs string
	Memory    string // qemu -m
	CPUs      int
	Timeout   time.Duration
	Command   []string // run by vminit in the guest
	Env       []string // NAME=VALUE for the command, on the kernel command line
}

// run boots the VM, passes each console line to line, and returns the
// command's exit status as vminit reported it.
func (v vm) run(ctx context.Context, work string, line func(string)) (int, error) {
	ctx, cancel := context.WithTimeout(ctx, v.Timeout)
	defer cancel()
	sock := filepath.Join(work, "virtiofs.sock")
	os.Remove(sock)
	fsd := exec.CommandContext(ctx, "/usr/lib/qemu/virtiofsd", "--socket-path="+sock,
		"-o", "source=/", "-o", "cache=auto", "-o", "sandbox=chroot", "-o", "log_level=err")
	fsd.Stdout, fsd.Stderr = os.Stderr, os.Stderr
	if err := fsd.Start(); err != nil {
		return -1, fmt.Errorf("virtiofsd: %w", err)
	}
	defer func() { fsd.Process.Kill(); fsd.Wait() }()
	for i := 0; ; i++ {
		if _, err := os.Stat(sock); err == nil {
			break
		}
		if i == 100 {
			return -1, fmt.Errorf("virtiofsd did not create %s", sock)
		}
		time.Sleep(50 * time.Millisecond)
	}
	args := []string{"console=ttyS0", "quiet", "loglevel=4", "panic=-1", "rdinit=/init", "strata.run=" + v.Command[0]}
	for _, a := range v.Command[1:] {
		args = append(args, "strata.arg="+a)
	}
	// Unknown name=value words on the kernel command line reach init's
	// environment, which vminit passes on.
	args = append(args, v.Env...)
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64",
		// One host thread for both vCPUs: with a thread each, the kernel's
		// live code patching (int3, then the new bytes) raced the other
		// vCPU's translated code and oopsed on an int3 (6.12, attaching
		// syscall tracepoints).
		"-accel", "tcg,thread=single", "-cpu", "max", "-smp", fmt.Sprint(v.CPUs), "-m", v.Memory,
		"-object", "memory-backend-memfd,id=mem,size="+v.Memory+",share=on", "-numa", "node,memdev=mem",
		"-chardev", "socket,id=fs,path="+sock, "-device", "vhost-user-fs-pci,chardev=fs,tag=root",
		"-kernel", v.Kernel.vmlinuz(), "-initrd", v.Initramfs, "-append", strings.Join(args, " "),
		"-nographic", "-no-reboot", "-nic", "none", "-monitor", "none", "-serial", "stdio")
	cmd.Stdin = nil
	out, err := cmd.StdoutPipe()
	if err != nil {
		return -1, err
	}
	cmd.Stderr = cmd.Stdout
	if err := cmd.Start(); err != nil {
		return -1, fmt.Errorf("qemu: %w", err)
	}
	code := -1
	sc := bufio.NewScanner(out)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		l := strings.TrimRight(sc.Text(), "\r")
		if n, ok := strings.CutPrefix(l, "strata-exit "); ok {
			fmt.Sscan(n, &code)
		}
		line(l)
	}
	io.Copy(io.Discard, out)
	werr := cmd.Wait()
	if ctx.Err() == context.DeadlineExceeded {
		return code, fmt.Errorf("VM still running after %s: killed", v.Timeout)
	}
	if code < 0 {
		return code, fmt.Errorf("VM ended without a result (qemu: %v)", werr)
	}
	return code, nil
}
