package containerd

import (
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
)

// overlayWorks tries an overlay mount under dir: overlayfs cannot stack
// on some filesystems (overlay itself in older kernels, some network
// filesystems), and containerd fails late when it cannot.
func overlayWorks(dir string) bool {
	base, err := os.MkdirTemp(dir, "overlay-check-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(base)
	for _, d := range []string{"lower", "upper", "work", "merged"} {
		if err := os.Mkdir(filepath.Join(base, d), 0o700); err != nil {
			return false
		}
	}
	opts := "lowerdir=" + filepath.Join(base, "lower") + ",upperdir=" + filepath.Join(base, "upper") + ",workdir=" + filepath.Join(base, "work")
	merged := filepath.Join(base, "merged")
	if err := syscall.Mount("overlay", merged, "overlay", 0, opts); err != nil {
		return false
	}
	syscall.Unmount(merged, 0)
	return true
}

// setChildAttrs ends containerd with the process that started it, should
// that one die without stopping it.
func setChildAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM, Setpgid: true}
}
