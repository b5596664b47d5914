package testenv

import (
	"os/exec"
	"syscall"
)

// DieWithParent kills cmd when the test binary dies, so that one killed by
// go test's -timeout leaves no servers behind.
func DieWithParent(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}
