//go:build !linux

package testenv

import "os/exec"

// dieWithParent: only Linux has a parent-death signal; elsewhere servers
// of a killed test binary are left to the operator.
func dieWithParent(*exec.Cmd) {}
