package testenv

import (
	"math/rand/v2"
	"net"
	"strconv"
	"testing"
)

// FreePort returns a loopback port nothing listens on right now, for a
// child process or a server that must be told its port before it binds.
//
// The port is picked at random from 10000–19999, below Linux's ephemeral
// range (32768–60999 by default): a port the kernel hands out for
// 127.0.0.1:0 is also handed out for outgoing connections, so a parallel
// test's client could take it between this check and the bind. In this
// range only another caller of FreePort can, and with 10 000 ports that is
// rare. redistest picks its ports from 20000 up, so the two never meet.
func FreePort(t testing.TB) int {
	t.Helper()
	for range 1000 {
		port := 10000 + rand.N(10000)
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue
		}
		_ = ln.Close()
		return port
	}
	t.Fatal("testenv: no free port in 10000-19999")
	return 0
}
