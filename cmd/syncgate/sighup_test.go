package main

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/internal/tlsreload/tlstest"
)

// SIGHUP reloads the TLS files at once (the poll interval here is an hour)
// and does not end the process.
func TestSIGHUPReloadsTheCertificate(t *testing.T) {
	ca := tlstest.NewCA(t, "server CA")
	dir := t.TempDir()
	files := tlstest.WriteFiles(t, dir, ca.Server(t), nil)
	config := filepath.Join(dir, "syncgate.yaml")
	if err := os.WriteFile(config, []byte(`addr: 127.0.0.1:0
demo: {enabled: true}
shutdown: {readiness_delay: 0s}
tls: {cert_file: `+files.Cert+`, key_file: `+files.Key+`, reload_interval: 1h}
routes: [{name: echo, method: POST, path: /demo/echo, destination: demo.echo}]
`), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd, base, exited := startProcess(t, "--config", config)
	addr := strings.TrimPrefix(base, "http://")
	serial := func() string {
		s, err := tlstest.ServerSerial(t, addr, ca.Pool())
		if err != nil {
			return err.Error()
		}
		return s.Text(16)
	}
	renewed := ca.Server(t)
	tlstest.WriteFiles(t, dir, renewed, nil)
	if err := cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	want := renewed.Cert.SerialNumber.Text(16)
	testenv.Eventually(t, 10*time.Second, "the renewed certificate after SIGHUP", func() bool {
		select {
		case err := <-exited:
			t.Fatalf("syncgate exited on SIGHUP: %v", err)
		default:
		}
		return serial() == want
	})
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		if err != nil {
			t.Fatalf("exit: %v, want status 0", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("syncgate did not exit within 20s of SIGTERM")
	}
}
