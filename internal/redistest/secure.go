package redistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"

	goredis "github.com/redis/go-redis/v9"
)

// Secure is what a secured deployment asks of its clients: TLS with
// certificates of a CA made for it (client certificates required), and
// an ACL user, the default user being off. The sentinels of a secured
// Sentinel set take SentinelPassword (requirepass) and TLS too.
type Secure struct {
	// CAFile is the PEM certificate of the CA that signed every server's
	// and the client's certificate.
	CAFile string
	// CertFile and KeyFile are the client's certificate and key.
	CertFile, KeyFile string
	// Username and Password are the data nodes' ACL user.
	Username, Password string
	// SentinelPassword is the sentinels' password (as user default).
	SentinelPassword string

	serverCert, serverKey string
	tls                   *tls.Config
}

// newSecure writes a CA, a server certificate for 127.0.0.1 (also used by
// the servers as clients: replication, the cluster bus, sentinels) and a
// client certificate into dir.
func newSecure(dir string) (*Secure, error) {
	s := &Secure{
		CAFile: filepath.Join(dir, "ca.pem"), CertFile: filepath.Join(dir, "client.pem"), KeyFile: filepath.Join(dir, "client-key.pem"),
		serverCert: filepath.Join(dir, "server.pem"), serverKey: filepath.Join(dir, "server-key.pem"),
		Username: "syncgate", Password: "redistest-" + randomHex(), SentinelPassword: "redistest-sentinel-" + randomHex(),
	}
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "redistest CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageDigitalSignature,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		return nil, err
	}
	if err := writePEM(s.CAFile, "CERTIFICATE", caDER); err != nil {
		return nil, err
	}
	leaf := func(serial int64, name string, usage []x509.ExtKeyUsage, certFile, keyFile string) error {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: usage,
			IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		kder, err := x509.MarshalPKCS8PrivateKey(key)
		if err != nil {
			return err
		}
		if err := writePEM(certFile, "CERTIFICATE", der); err != nil {
			return err
		}
		return writePEM(keyFile, "PRIVATE KEY", kder)
	}
	if err := leaf(2, "redistest server", []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}, s.serverCert, s.serverKey); err != nil {
		return nil, err
	}
	if err := leaf(3, "redistest client", []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}, s.CertFile, s.KeyFile); err != nil {
		return nil, err
	}
	cert, err := tls.LoadX509KeyPair(s.CertFile, s.KeyFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(mustParse(caDER))
	s.tls = &tls.Config{MinVersion: tls.VersionTLS12, RootCAs: pool, Certificates: []tls.Certificate{cert}}
	return s, nil
}

func mustParse(der []byte) *x509.Certificate {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		panic(err)
	}
	return c
}

func writePEM(file, typ string, der []byte) error {
	return os.WriteFile(file, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600)
}

func randomHex() string {
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return fmt.Sprintf("%x", b)
}

// TLSConfig returns the client's TLS configuration: the CA, and the client
// certificate.
func (s *Secure) TLSConfig() *tls.Config { return s.tls.Clone() }

// tlsLines are the TLS directives of every secured process: TLS only, a
// client certificate required, TLS between the servers too.
func (s *Secure) tlsLines(port int) string {
	return fmt.Sprintf("port 0\ntls-port %d\ntls-cert-file %s\ntls-key-file %s\ntls-ca-cert-file %s\n"+
		"tls-auth-clients yes\ntls-replication yes\n", port, s.serverCert, s.serverKey, s.CAFile)
}

// dataConf writes the config file of a secured data node and returns its
// path: TLS, the ACL user (with every command, key and channel), the
// default user off, and the user for replication.
func (s *Secure) dataConf(dir string, port int, cluster bool) (string, error) {
	text := s.tlsLines(port) +
		"user default off\n" +
		fmt.Sprintf("user %s on >%s ~* &* +@all\n", s.Username, s.Password) +
		fmt.Sprintf("masteruser %s\nmasterauth %s\n", s.Username, s.Password)
	if cluster {
		text += "tls-cluster yes\n"
	}
	file := filepath.Join(dir, fmt.Sprintf("secure-%d.conf", port))
	return file, os.WriteFile(file, []byte(text), 0o600)
}

// sentinelLines are a secured sentinel's directives besides monitor: TLS,
// its password, the other sentinels' password, and the data nodes' user.
func (s *Secure) sentinelLines(port int, master string) string {
	return s.tlsLines(port) +
		fmt.Sprintf("requirepass %s\nsentinel sentinel-pass %s\n", s.SentinelPassword, s.SentinelPassword) +
		fmt.Sprintf("sentinel auth-user %s %s\nsentinel auth-pass %s %s\n", master, s.Username, master, s.Password)
}

// cliArgs are redis-cli's flags for a secured node.
func (s *Secure) cliArgs() []string {
	return []string{"--tls", "--cacert", s.CAFile, "--cert", s.CertFile, "--key", s.KeyFile,
		"--user", s.Username, "--pass", s.Password, "--no-auth-warning"}
}

// options are the go-redis options of a test's own client of a data node
// (s may be nil: a deployment without TLS and ACL). A call ends at its
// context's deadline, a read or write included (ContextTimeoutEnabled).
func (s *Secure) options(addr string) *goredis.Options {
	o := &goredis.Options{Addr: addr, DialerRetries: 1, MaxRetries: -1, ContextTimeoutEnabled: true}
	if s != nil {
		o.TLSConfig, o.Username, o.Password = s.TLSConfig(), s.Username, s.Password
	}
	return o
}

// sentinelOptions are options's for a sentinel.
func (s *Secure) sentinelOptions(addr string) *goredis.Options {
	o := &goredis.Options{Addr: addr, DialerRetries: 1, MaxRetries: -1, ContextTimeoutEnabled: true}
	if s != nil {
		o.TLSConfig, o.Password = s.TLSConfig(), s.SentinelPassword
	}
	return o
}
