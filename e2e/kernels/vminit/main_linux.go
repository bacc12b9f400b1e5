// Command vminit is PID 1 of a kernel-matrix VM (e2e/kernels). It lives
// alone in the initramfs with the few modules the kernel needs to reach
// the host: it loads them, mounts the host's root (virtiofs, tag "root")
// read-only under a tmpfs overlay, moves into it and runs the command
// named on the kernel command line (strata.run=PATH, strata.arg=ARG...),
// then powers the VM off. The command's exit status goes to the console
// as "strata-exit N" so the host can tell a finished run from a crash.
package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

func main() {
	code := run()
	fmt.Printf("strata-exit %d\n", code)
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func run() int {
	for _, m := range []struct{ src, dst, fs string }{
		{"proc", "/proc", "proc"}, {"dev", "/dev", "devtmpfs"}, {"rw", "/rw", "tmpfs"},
	} {
		if err := mount(m.src, m.dst, m.fs, 0, ""); err != nil {
			return fail(err)
		}
	}
	if err := loadModules("/modules"); err != nil {
		return fail(err)
	}
	if err := mount("root", "/host", "virtiofs", unix.MS_RDONLY, ""); err != nil {
		return fail(err)
	}
	for _, d := range []string{"/rw/upper", "/rw/work"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fail(err)
		}
	}
	if err := mount("overlay", "/newroot", "overlay", 0, "lowerdir=/host,upperdir=/rw/upper,workdir=/rw/work"); err != nil {
		return fail(err)
	}
	argv, err := command()
	if err != nil {
		return fail(err)
	}
	// The host's own /proc and /dev show through the share: ours go on top.
	for _, d := range []string{"/dev", "/proc"} {
		if err := unix.Mount(d, "/newroot"+d, "", unix.MS_MOVE, ""); err != nil {
			return fail(fmt.Errorf("move %s: %w", d, err))
		}
	}
	if err := switchRoot("/newroot"); err != nil {
		return fail(err)
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = nil, os.Stdout, os.Stderr
	// The kernel hands init the command line's unknown NAME=VALUE words.
	cmd.Env = append(os.Environ(), "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "TERM=dumb")
	if err := cmd.Run(); err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return ee.ExitCode()
		}
		return fail(err)
	}
	return 0
}

func mount(src, dst, fs string, flags uintptr, data string) error {
	if err := os.MkdirAll(dst, 0o755); err != nil {
		return err
	}
	if err := unix.Mount(src, dst, fs, flags, data); err != nil {
		return fmt.Errorf("mount %s on %s: %w", fs, dst, err)
	}
	return nil
}

// loadModules loads dir's modules in the order its file "order" lists
// (dependencies first); a module the kernel already has is fine.
func loadModules(dir string) error {
	b, err := os.ReadFile(filepath.Join(dir, "order"))
	if err != nil {
		return err
	}
	for _, name := range strings.Fields(string(b)) {
		f, err := os.Open(filepath.Join(dir, name))
		if err != nil {
			return err
		}
		err = unix.FinitModule(int(f.Fd()), "", 0)
		f.Close()
		if err != nil && err != unix.EEXIST {
			return fmt.Errorf("load module %s: %w", name, err)
		}
	}
	return nil
}

// switchRoot makes dir the root, as switch_root does (the initramfs stays
// in memory: it is small).
func switchRoot(dir string) error {
	if err := os.Chdir(dir); err != nil {
		return err
	}
	if err := unix.Mount(".", "/", "", unix.MS_MOVE, ""); err != nil {
		return fmt.Errorf("move root: %w", err)
	}
	if err := unix.Chroot("."); err != nil {
		return err
	}
	return os.Chdir("/")
}

// command is strata.run and its strata.arg values from the kernel command line.
func command() ([]string, error) {
	b, err := os.ReadFile("/proc/cmdline")
	if err != nil {
		return nil, err
	}
	var argv []string
	for _, f := range strings.Fields(string(b)) {
		if v, ok := strings.CutPrefix(f, "strata.run="); ok {
			argv = append([]string{v}, argv...)
		} else if v, ok := strings.CutPrefix(f, "strata.arg="); ok {
			argv = append(argv, v)
		}
	}
	if len(argv) == 0 || !filepath.IsAbs(argv[0]) {
		return nil, fmt.Errorf("no strata.run=/path on the kernel command line")
	}
	return argv, nil
}

func fail(err error) int {
	fmt.Fprintln(os.Stderr, "vminit:", err)
	return 125
}
