//go:build unix && !linux

package embedpg

import (
	"errors"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// maxSocketPath is sizeof(sun_path) minus the terminating NUL on the BSDs
// and macOS.
const maxSocketPath = 103

// sysProcAttr cannot ask for a signal on pgkube's death outside Linux;
// Start documents that PostgreSQL may outlive a crashed pgkube there.
func sysProcAttr(cred *syscall.Credential, _ syscall.Signal) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred}
}

// isPostgresOf reports whether pid is a live postgres process. When unsure
// it says yes: wrongly deleting the lock file of a running server is far
// worse than refusing to start.
func isPostgresOf(pid int, _ string) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return false
	}
	out, err := exec.Command("ps", "-o", "comm=", "-p", strconv.Itoa(pid)).Output()
	if err != nil {
		return true
	}
	name := filepath.Base(strings.TrimSpace(string(out)))
	return name == "postgres" || name == "postmaster"
}
