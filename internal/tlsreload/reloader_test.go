package tlsreload_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/internal/tlsreload"
	"github.com/syncgate/syncgate/internal/tlsreload/tlstest"
)

// serve runs an HTTPS server on r's configuration until the test ends and
// returns its address.
func serve(t *testing.T, r *tlsreload.Reloader) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.TLS != nil && len(req.TLS.VerifiedChains) > 0 {
			_, _ = w.Write([]byte(req.TLS.VerifiedChains[0][0].Subject.CommonName))
		}
	}), TLSConfig: r.TLSConfig(), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() { _ = srv.Close(); <-done })
	return ln.Addr().String()
}

// runReloader runs r.Run until the test ends.
func runReloader(t *testing.T, r *tlsreload.Reloader) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); r.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
}

func TestReloadOnFileChange(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	first := ca.Server(t)
	files := tlstest.WriteFiles(t, t.TempDir(), first, nil)
	logs := &testenv.SyncBuffer{}
	r, err := tlsreload.New(tlsreload.Config{CertFile: files.Cert, KeyFile: files.Key, Interval: 10 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r)
	runReloader(t, r)
	serialIs := func(want string) func() bool {
		return func() bool {
			got, err := tlstest.ServerSerial(t, addr, ca.Pool())
			return err == nil && got.Text(16) == want
		}
	}
	testenv.Eventually(t, 5*time.Second, "the first certificate served", serialIs(first.Cert.SerialNumber.Text(16)))

	// A renewal: the key is replaced first, then the certificate. Between
	// the two the pair does not match and the first certificate stays.
	renewed := ca.Server(t)
	tlstest.Replace(t, files.Key, renewed.KeyPEM)
	tlstest.Replace(t, files.Cert, renewed.CertPEM)
	testenv.Eventually(t, 5*time.Second, "the renewed certificate served", serialIs(renewed.Cert.SerialNumber.Text(16)))
	if !strings.Contains(logs.String(), "serial="+renewed.Cert.SerialNumber.Text(16)) {
		t.Errorf("no INFO line with the new serial:\n%s", logs)
	}

	// A half-written certificate: logged, and the renewed one stays.
	tlstest.Replace(t, files.Cert, renewed.CertPEM[:len(renewed.CertPEM)/2])
	testenv.Eventually(t, 5*time.Second, "a warning for the broken file", func() bool {
		return strings.Contains(logs.String(), `level=WARN msg="TLS reload failed; serving the previous certificate" component=tlsreload trigger="file change"`)
	})
	if ok := serialIs(renewed.Cert.SerialNumber.Text(16))(); !ok {
		t.Fatal("a broken file replaced the served certificate")
	}
	if got := r.Certificate().SerialNumber; got.Cmp(renewed.Cert.SerialNumber) != 0 {
		t.Fatalf("Certificate() serial %x", got)
	}
}

func TestReloadKeepsTheOldCertificateOnAMismatchedKey(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	first := ca.Server(t)
	files := tlstest.WriteFiles(t, t.TempDir(), first, nil)
	r, err := tlsreload.New(tlsreload.Config{CertFile: files.Cert, KeyFile: files.Key})
	if err != nil {
		t.Fatal(err)
	}
	other := ca.Server(t)
	tlstest.Replace(t, files.Key, other.KeyPEM)
	err = r.Reload()
	if err == nil || !strings.Contains(err.Error(), "private key does not match public key") {
		t.Fatalf("Reload: %v, want a key mismatch", err)
	}
	if r.Certificate().SerialNumber.Cmp(first.Cert.SerialNumber) != 0 {
		t.Fatal("a failed reload replaced the certificate")
	}
	tlstest.Replace(t, files.Cert, other.CertPEM)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if r.Certificate().SerialNumber.Cmp(other.Cert.SerialNumber) != 0 {
		t.Fatal("Reload did not take the new pair")
	}
}

// A client CA added to the bundle is trusted by the next handshake; the
// one removed from it is refused.
func TestReloadClientCAs(t *testing.T) {
	ca, second := tlstest.NewCA(t, "first CA"), tlstest.NewCA(t, "second CA")
	files := tlstest.WriteFiles(t, t.TempDir(), ca.Server(t), ca)
	r, err := tlsreload.New(tlsreload.Config{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: files.CA})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r)
	get := func(client *tlstest.Leaf) (string, error) {
		c := &http.Client{Transport: &http.Transport{TLSClientConfig: tlstest.ClientConfig(t, ca.Pool(), client)}}
		defer c.CloseIdleConnections()
		resp, err := c.Get("https://" + addr + "/")
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, err = b.ReadFrom(resp.Body)
		return b.String(), err
	}
	alice, bob := ca.Client(t, tlstest.Identity{CN: "alice"}), second.Client(t, tlstest.Identity{CN: "bob"})
	if got, err := get(alice); err != nil || got != "alice" {
		t.Fatalf("alice: %q %v", got, err)
	}
	if _, err := get(bob); err == nil {
		t.Fatal("bob's certificate from an unknown CA was accepted")
	}
	tlstest.Replace(t, files.CA, second.PEM)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got, err := get(bob); err != nil || got != "bob" {
		t.Fatalf("bob after the reload: %q %v", got, err)
	}
	if _, err := get(alice); err == nil {
		t.Fatal("alice's CA was removed but her certificate was accepted")
	}
}

func TestMinVersion(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	files := tlstest.WriteFiles(t, t.TempDir(), ca.Server(t), nil)
	r, err := tlsreload.New(tlsreload.Config{CertFile: files.Cert, KeyFile: files.Key, MinVersion: tls.VersionTLS13})
	if err != nil {
		t.Fatal(err)
	}
	addr := serve(t, r)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS12})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.2-only client connected to a TLS 1.3 minimum")
	}
	conn, err = tls.Dial("tcp", addr, &tls.Config{RootCAs: ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if v := conn.ConnectionState().Version; v != tls.VersionTLS13 {
		t.Fatalf("version %x", v)
	}
}

func TestNewNamesTheFileThatFails(t *testing.T) {
	ca := tlstest.NewCA(t, "test CA")
	dir := t.TempDir()
	files := tlstest.WriteFiles(t, dir, ca.Server(t), ca)
	notPEM := dir + "/not.pem"
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		cfg  tlsreload.Config
		want string
	}{
		{"no key", tlsreload.Config{CertFile: files.Cert}, "key file are required"},
		{"missing cert", tlsreload.Config{CertFile: dir + "/nope.crt", KeyFile: files.Key}, "certificate file: open " + dir + "/nope.crt"},
		{"cert not PEM", tlsreload.Config{CertFile: notPEM, KeyFile: files.Key}, "certificate " + notPEM},
		{"key is a cert", tlsreload.Config{CertFile: files.Cert, KeyFile: files.Cert}, "key " + files.Cert},
		{"missing CA", tlsreload.Config{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: dir + "/nope"}, "client CA file: open"},
		{"CA not PEM", tlsreload.Config{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: notPEM}, "client CA file " + notPEM + ": data after the last PEM block"},
		{"CA is a key", tlsreload.Config{CertFile: files.Cert, KeyFile: files.Key, ClientCAFile: files.Key}, "no PEM certificate found"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tlsreload.New(tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want %q", err, tc.want)
			}
		})
	}
}
