package embedpg

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// maxSocketPath is sizeof(sun_path) minus the terminating NUL.
const maxSocketPath = 107

func sysProcAttr(cred *syscall.Credential, deathSignal syscall.Signal) *syscall.SysProcAttr {
	// Go applies Pdeathsig after switching credentials, which matters
	// because the kernel clears it on a uid change.
	return &syscall.SysProcAttr{Setpgid: true, Credential: cred, Pdeathsig: deathSignal}
}

// isPostgresOf reports whether pid is a live postgres process serving
// pgData. When unsure it says yes: wrongly deleting the lock file of a
// running server is far worse than refusing to start.
func isPostgresOf(pid int, pgData string) bool {
	proc := "/proc/" + strconv.Itoa(pid)
	stat, err := os.ReadFile(proc + "/stat")
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err != nil {
		return true
	}
	// The state follows the parenthesized command name, which may itself
	// contain parentheses. A zombie no longer uses the data directory.
	if i := strings.LastIndexByte(string(stat), ')'); i >= 0 && i+2 < len(stat) {
		if state := stat[i+2]; state == 'Z' || state == 'X' {
			return false
		}
	}
	comm, err := os.ReadFile(proc + "/comm")
	if err != nil {
		return !errors.Is(err, os.ErrNotExist)
	}
	if name := strings.TrimSpace(string(comm)); name != "postgres" && name != "postmaster" {
		return false
	}
	// The postmaster chdirs into its data directory, which tells a reused
	// PID of some other cluster's server apart from ours.
	cwd, err := os.Readlink(proc + "/cwd")
	if err != nil {
		return true
	}
	want, err := filepath.EvalSymlinks(pgData)
	if err != nil {
		want = pgData
	}
	return cwd == want
}
