package main

import (
	"os/exec"
	"syscall"
)

// setChildAttrs: the child dies with pgkube up, even when up is killed.
func setChildAttrs(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGTERM}
}
