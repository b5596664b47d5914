package kafka

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/brokers"
)

// roundTripOn publishes one message to a fresh inbox topic and waits for it:
// every connection kind (transport, dialer, group-less reader) is used.
func roundTripOn(t *testing.T, c *testCluster, cfg Config) {
	t.Helper()
	got := make(chan string, 1)
	topic := "syncgate.reply.secure"
	subscribe(t, c.subscriber(t, cfg), topic, func(ctx context.Context, m brokers.Message) error {
		got <- string(m.Body)
		return nil
	}, brokers.AsInbox())
	if err := c.publisher(t, cfg).Publish(publishCtx(t), topic, brokers.Message{Key: "k", Body: []byte("secret")}); err != nil {
		t.Fatalf("publish: %v", err)
	}
	if b := recv(t, got, "delivery"); b != "secret" {
		t.Fatalf("got %q", b)
	}
}

// TestSASL: each mechanism authenticates against kfake; a wrong password
// makes Publish fail instead of hanging.
func TestSASL(t *testing.T) {
	if os.Getenv(brokersEnv) != "" {
		t.Skip("needs a cluster with known users: kfake only")
	}
	c := newFake(t, kfake.EnableSASL(),
		kfake.Superuser(MechanismPlain, "plain-user", "plain-pass"),
		kfake.Superuser(MechanismSCRAMSHA256, "scram256-user", "scram256-pass"),
		kfake.Superuser(MechanismSCRAMSHA512, "scram512-user", "scram512-pass"))
	for _, s := range []SASL{
		{Mechanism: MechanismPlain, Username: "plain-user", Password: "plain-pass"},
		{Mechanism: MechanismSCRAMSHA256, Username: "scram256-user", Password: "scram256-pass"},
		{Mechanism: MechanismSCRAMSHA512, Username: "scram512-user", Password: "scram512-pass"},
	} {
		t.Run(s.Mechanism, func(t *testing.T) {
			cfg := c.config()
			cfg.SASL = s
			roundTripOn(t, c, cfg)
		})
	}
	t.Run("wrong password", func(t *testing.T) {
		cfg := c.config()
		cfg.SASL = SASL{Mechanism: MechanismSCRAMSHA256, Username: "scram256-user", Password: "wrong"}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := c.publisher(t, cfg).Publish(ctx, "any", brokers.Message{Body: []byte("x")})
		if err == nil || errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("publish with a wrong password: %v, want an authentication error before the deadline", err)
		}
	})
}

// TestTLS: the client verifies kfake's certificate against the CA file.
func TestTLS(t *testing.T) {
	if os.Getenv(brokersEnv) != "" {
		t.Skip("needs a broker with a test certificate: kfake only")
	}
	caFile, serverCert := testCertificates(t)
	c := newFake(t, kfake.TLS(&tls.Config{Certificates: []tls.Certificate{serverCert}, MinVersion: tls.VersionTLS12}))
	cfg := c.config()
	cfg.TLS = TLS{Enable: true, CAFile: caFile}
	roundTripOn(t, c, cfg)
}

// testCertificates writes a CA to a file and returns it with a server
// certificate it signed for 127.0.0.1.
func testCertificates(t *testing.T) (string, tls.Certificate) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "syncgate test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	srvKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	srv := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	srvDER, err := x509.CreateCertificate(rand.Reader, srv, ca, &srvKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey}
}
