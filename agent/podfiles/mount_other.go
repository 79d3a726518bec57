//go:build !linux

package podfiles

import (
	"errors"
	"os"
)

func canMount() bool { return false }

func isMountPoint(string) (bool, error) { return false, nil }

func mountTmpfs(string, int64, os.FileMode) error {
	return errors.New("memory-backed volumes need Linux")
}

func unmountUnder(string) error { return nil }
