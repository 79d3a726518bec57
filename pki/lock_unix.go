//go:build unix

package pki

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// lockDir takes an advisory lock on dir, exclusive or shared. flock locks
// belong to the open file description, so they exclude other goroutines of
// this process (each opens the file anew) as well as other processes; the
// kernel drops them if the process dies.
func lockDir(dir string, exclusive bool) (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(dir, lockFile), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	how := syscall.LOCK_SH
	if exclusive {
		how = syscall.LOCK_EX
	}
	for {
		err = syscall.Flock(int(f.Fd()), how)
		if err != syscall.EINTR {
			break
		}
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", dir, err)
	}
	return func() {
		// Closing the descriptor releases the lock.
		f.Close()
	}, nil
}
