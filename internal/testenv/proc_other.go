//go:build !linux

package testenv

import "os/exec"

// DieWithParent: only Linux has a parent-death signal; elsewhere servers
// of a killed test binary are left to the operator.
func DieWithParent(*exec.Cmd) {}
