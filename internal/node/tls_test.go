package node_test

import (
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/internal/tlsreload/tlstest"
)

// tlsNode runs the test configuration over HTTPS with the files of ca's
// server certificate (and ca as the client CA when mTLS) and returns the
// running node and its log.
func tlsNode(t *testing.T, ca *tlstest.CA, mTLS bool, edit func(*node.Config)) (*running, tlstest.Files, *testenv.SyncBuffer) {
	t.Helper()
	var clientCA *tlstest.CA
	if mTLS {
		clientCA = ca
	}
	files := tlstest.WriteFiles(t, t.TempDir(), ca.Server(t), clientCA)
	cfg := testConfig()
	cfg.TLS.CertFile, cfg.TLS.KeyFile, cfg.TLS.ClientCAFile = files.Cert, files.Key, files.CA
	if edit != nil {
		edit(&cfg)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.SyncBuffer{}
	n, err := node.New(cfg, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatal(err)
	}
	r := run(t, n)
	r.base = "https://" + n.Addr()
	return r, files, logs
}

// httpsClient trusts ca and presents client (when not nil).
func httpsClient(t *testing.T, ca *tlstest.CA, client *tlstest.Leaf) *http.Client {
	t.Helper()
	tr := &http.Transport{TLSClientConfig: tlstest.ClientConfig(t, ca.Pool(), client), ForceAttemptHTTP2: true}
	t.Cleanup(tr.CloseIdleConnections)
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}

func post(t *testing.T, c *http.Client, url, authz string) (*http.Response, []byte, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", url, strings.NewReader("hi"))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	if authz != "" {
		req.Header.Set("Authorization", authz)
	}
	resp, err := c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, b, err
}

// mTLS through the node: a client certificate from the configured CA is a
// credential whose CN is the principal; one from another CA fails the
// handshake; a bearer key still works; nothing at all is a 401.
func TestMTLS(t *testing.T) {
	ca, stranger := tlstest.NewCA(t, "clients CA"), tlstest.NewCA(t, "another CA")
	sum := sha256.Sum256([]byte("bob-key"))
	r, _, logs := tlsNode(t, ca, true, func(c *node.Config) {
		c.Auth.APIKeys = []node.APIKeyConfig{{Principal: "bob", SHA256: hex.EncodeToString(sum[:])}}
	})
	alice := ca.Client(t, tlstest.Identity{CN: "alice", Emails: []string{"alice@example.org"}})
	nameless := ca.Client(t, tlstest.Identity{DNS: []string{"nameless.example"}})

	for _, tc := range []struct {
		name      string
		client    *tlstest.Leaf
		authz     string
		status    int
		principal string
	}{
		{"client certificate", alice, "", http.StatusOK, "alice"},
		{"certificate wins over a wrong bearer", alice, "Bearer wrong", http.StatusOK, "alice"},
		{"bearer without certificate", nil, "Bearer bob-key", http.StatusOK, "bob"},
		{"nothing", nil, "", http.StatusUnauthorized, ""},
		{"wrong bearer", nil, "Bearer wrong", http.StatusUnauthorized, ""},
		{"certificate without a CN", nameless, "", http.StatusUnauthorized, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			resp, body, err := post(t, httpsClient(t, ca, tc.client), r.base+"/demo/echo", tc.authz)
			if err != nil {
				t.Fatal(err)
			}
			if resp.StatusCode != tc.status {
				t.Fatalf("%d %s, want %d", resp.StatusCode, body, tc.status)
			}
			if tc.status == http.StatusUnauthorized {
				problem(t, resp, body, api.ProblemUnauthorized)
				return
			}
			id := resp.Header.Get(api.HeaderCorrelationID)
			testenv.Eventually(t, 5*time.Second, "the access log line names the principal", func() bool {
				for line := range strings.SplitSeq(logs.String(), "\n") {
					if strings.Contains(line, "msg=request") && strings.Contains(line, "correlation_id="+id) {
						return strings.Contains(line, " principal="+tc.principal)
					}
				}
				return false
			})
		})
	}

	t.Run("certificate from another CA", func(t *testing.T) {
		if _, _, err := post(t, httpsClient(t, ca, stranger.Client(t, tlstest.Identity{CN: "mallory"})), r.base+"/demo/echo", "Bearer bob-key"); err == nil {
			t.Fatal("a request with a certificate from another CA was answered")
		}
		// Under TLS 1.3 the server's verdict arrives after the client's
		// side of the handshake: read it on a raw connection.
		conn, err := tls.Dial("tcp", r.Addr(), tlstest.ClientConfig(t, ca.Pool(), stranger.Client(t, tlstest.Identity{CN: "mallory"})))
		if err == nil {
			defer conn.Close()
			_, err = conn.Read(make([]byte, 1))
		}
		if err == nil || !strings.Contains(err.Error(), "unknown certificate authority") {
			t.Fatalf("err %v, want the handshake refused: unknown certificate authority", err)
		}
	})
	t.Run("plain HTTP", func(t *testing.T) {
		resp, body, err := post(t, http.DefaultClient, "http://"+r.Addr()+"/demo/echo", "Bearer bob-key")
		if err == nil && resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("plain HTTP to the HTTPS listener: %d %s", resp.StatusCode, body)
		}
	})
}

// The principal rule picks another field of the certificate.
func TestMTLSPrincipalRule(t *testing.T) {
	ca := tlstest.NewCA(t, "clients CA")
	r, _, _ := tlsNode(t, ca, true, func(c *node.Config) { c.TLS.ClientPrincipal = "san_uri" })
	svc := ca.Client(t, tlstest.Identity{CN: "checkout", URIs: []string{"spiffe://example.org/sa/checkout"}})
	if resp, body, err := post(t, httpsClient(t, ca, svc), r.base+"/demo/echo", ""); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("%v %v %s", resp, err, body)
	}
	cnOnly := ca.Client(t, tlstest.Identity{CN: "checkout"})
	if resp, body, err := post(t, httpsClient(t, ca, cnOnly), r.base+"/demo/echo", ""); err != nil || resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a certificate without a URI SAN: %v %v %s", resp, err, body)
	}
}

// A renewed certificate renamed over the files reaches new handshakes
// without a restart; a broken one does not replace it; Reload (SIGHUP)
// reads the files at once.
func TestTLSReloadThroughTheNode(t *testing.T) {
	ca := tlstest.NewCA(t, "server CA")
	r, files, logs := tlsNode(t, ca, false, func(c *node.Config) { c.TLS.ReloadInterval = 20 * time.Millisecond })
	if resp, body, err := post(t, httpsClient(t, ca, nil), r.base+"/demo/echo", ""); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTPS without auth: %v %v %s", resp, err, body)
	}
	serial := func() string {
		s, err := tlstest.ServerSerial(t, r.Addr(), ca.Pool())
		if err != nil {
			return err.Error()
		}
		return s.Text(16)
	}
	renewed := ca.Server(t)
	tlstest.Replace(t, files.Key, renewed.KeyPEM)
	tlstest.Replace(t, files.Cert, renewed.CertPEM)
	want := renewed.Cert.SerialNumber.Text(16)
	testenv.Eventually(t, 5*time.Second, "the renewed certificate served", func() bool { return serial() == want })

	tlstest.Replace(t, files.Cert, []byte("-----BEGIN CERTIFICATE-----\nMIIB"))
	if err := r.Reload(); err == nil {
		t.Fatal("Reload of a broken file succeeded")
	}
	if got := serial(); got != want {
		t.Fatalf("after a broken write the server presents %s, want %s", got, want)
	}
	if !strings.Contains(logs.String(), "level=WARN msg=\"TLS reload failed; serving the previous certificate\"") {
		t.Errorf("no warning for the broken file:\n%s", logs)
	}
	third := ca.Server(t)
	tlstest.WriteFiles(t, dirOf(files.Cert), third, nil)
	if err := r.Reload(); err != nil {
		t.Fatal(err)
	}
	if got := serial(); got != third.Cert.SerialNumber.Text(16) {
		t.Fatalf("after Reload the server presents %s", got)
	}
}

func dirOf(path string) string { return path[:strings.LastIndexByte(path, '/')] }

func TestTLSMinVersion13(t *testing.T) {
	ca := tlstest.NewCA(t, "server CA")
	r, _, _ := tlsNode(t, ca, false, func(c *node.Config) { c.TLS.MinVersion = "1.3" })
	conn, err := tls.Dial("tcp", r.Addr(), &tls.Config{RootCAs: ca.Pool(), MaxVersion: tls.VersionTLS12})
	if err == nil {
		conn.Close()
		t.Fatal("a TLS 1.2-only client connected")
	}
	conn, err = tls.Dial("tcp", r.Addr(), &tls.Config{RootCAs: ca.Pool()})
	if err != nil {
		t.Fatal(err)
	}
	conn.Close()
}

func TestTLSConfigErrors(t *testing.T) {
	ca := tlstest.NewCA(t, "server CA")
	dir := t.TempDir()
	files := tlstest.WriteFiles(t, dir, ca.Server(t), ca)
	otherKey := dir + "/other.key"
	if err := os.WriteFile(otherKey, ca.Server(t).KeyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	route := "routes: [{name: e, method: POST, path: /e, destination: d, auth: required}]\n"
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"key without cert", "tls: {key_file: " + files.Key + "}\n", "tls.cert_file: is empty but tls.key_file is set"},
		{"cert without key", "tls: {cert_file: " + files.Cert + "}\n", "tls.key_file: is empty but tls.cert_file is set"},
		{"client CA without cert", "tls: {client_ca_file: " + files.CA + "}\n", "tls.client_ca_file: needs tls.cert_file and tls.key_file"},
		{"min version 1.1", "tls: {min_version: \"1.1\"}\n", `tls.min_version: "1.1" is not 1.2 or 1.3`},
		{"principal rule", "tls: {client_principal: ou}\n", `tls.client_principal: "ou" is not cn`},
		{"missing cert", "tls: {cert_file: " + dir + "/nope.crt, key_file: " + files.Key + "}\n", "tls: certificate file: open " + dir + "/nope.crt"},
		{"mismatched key", "tls: {cert_file: " + files.Cert + ", key_file: " + otherKey + "}\n", "private key does not match public key"},
		{"CA is not a certificate", "tls: {cert_file: " + files.Cert + ", key_file: " + files.Key + ", client_ca_file: " + files.Key + "}\n", "tls: client CA file " + files.Key + ": no PEM certificate found"},
		{"auth required without a source", route, "routes[0].auth: required needs a credential source"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, err := node.Parse([]byte(tc.yaml))
			if err == nil {
				cfg.SetDefaults()
				err = cfg.Validate()
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want one containing %q", err, tc.want)
			}
		})
	}
	// tls.client_ca_file is a credential source: auth: required is valid.
	cfg, err := node.Parse([]byte(route + "tls: {cert_file: " + files.Cert + ", key_file: " + files.Key + ", client_ca_file: " + files.CA + "}\n"))
	if err != nil {
		t.Fatal(err)
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatalf("auth: required with mTLS only: %v", err)
	}
}
