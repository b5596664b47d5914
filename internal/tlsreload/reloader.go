package tlsreload

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultInterval is how often Run looks at the files by default.
const DefaultInterval = 5 * time.Second

// Config names the files a Reloader serves.
type Config struct {
	// CertFile and KeyFile are the server's PEM certificate (leaf first,
	// then intermediates) and its private key. Required.
	CertFile, KeyFile string
	// ClientCAFile, when set, is a PEM bundle of the CAs that sign client
	// certificates: clients are asked for one (tls.VerifyClientCertIfGiven)
	// and a certificate that does not verify fails the handshake. A client
	// that sends none still connects (it may use another credential).
	ClientCAFile string
	// MinVersion is the lowest TLS version accepted (default TLS 1.2).
	MinVersion uint16
	// NextProtos are the ALPN protocols offered (e.g. h2, http/1.1).
	NextProtos []string
	// Interval is how often Run reads the files for a change (default
	// DefaultInterval).
	Interval time.Duration
	Logger   *slog.Logger
}

// Reloader holds the current certificate and client CA pool.
type Reloader struct {
	cfg Config
	log *slog.Logger
	cur atomic.Pointer[material]

	// mu serialises loads; seen is the fingerprint of the file contents
	// last tried, so that Run retries a broken file only once it changed.
	mu   sync.Mutex
	seen [sha256.Size]byte
}

// material is what one successful load produced.
type material struct {
	cert *tls.Certificate
	// client is the handshake configuration with the client CA pool; nil
	// without ClientCAFile.
	client *tls.Config
}

// New loads the files; an error names the file that failed.
func New(cfg Config) (*Reloader, error) {
	if cfg.CertFile == "" || cfg.KeyFile == "" {
		return nil, errors.New("tlsreload: a certificate file and a key file are required")
	}
	if cfg.MinVersion == 0 {
		cfg.MinVersion = tls.VersionTLS12
	}
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultInterval
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	r := &Reloader{cfg: cfg, log: cfg.Logger.With(slog.String("component", "tlsreload"))}
	if err := r.load("start", true); err != nil {
		return nil, err
	}
	return r, nil
}

// TLSConfig returns the server configuration to serve with: its
// certificate and client CA pool are the Reloader's current ones at each
// handshake.
func (r *Reloader) TLSConfig() *tls.Config {
	c := &tls.Config{MinVersion: r.cfg.MinVersion, NextProtos: r.cfg.NextProtos, GetCertificate: r.getCertificate}
	if r.cfg.ClientCAFile != "" {
		c.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) { return r.cur.Load().client, nil }
	}
	return c
}

// Certificate returns the leaf certificate served now.
func (r *Reloader) Certificate() *x509.Certificate { return r.cur.Load().cert.Leaf }

// Reload reads the files now, whether or not they changed (SIGHUP). On
// failure the current material stays and the error says why.
func (r *Reloader) Reload() error { return r.load("reload", true) }

// Run reads the files every Interval and loads them when their content
// changed, until ctx ends.
func (r *Reloader) Run(ctx context.Context) {
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			_ = r.load("file change", false)
		}
	}
}

func (r *Reloader) getCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	return r.cur.Load().cert, nil
}

// load reads the files and, when force or their content differs from the
// last attempt, parses them and swaps them in.
func (r *Reloader) load(trigger string, force bool) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	certPEM, keyPEM, caPEM, err := r.read()
	if err == nil {
		sum := fingerprint(certPEM, keyPEM, caPEM)
		if !force && sum == r.seen {
			return nil
		}
		r.seen = sum
		var m *material
		if m, err = r.parse(certPEM, keyPEM, caPEM); err == nil {
			r.cur.Store(m)
			leaf := m.cert.Leaf
			r.log.Info("TLS certificate loaded", slog.String("trigger", trigger),
				slog.String("subject", leaf.Subject.String()), slog.String("serial", leaf.SerialNumber.Text(16)),
				slog.Time("not_after", leaf.NotAfter), slog.Bool("client_certificates", m.client != nil))
			if time.Now().After(leaf.NotAfter) {
				r.log.Warn("the TLS certificate has expired: clients will refuse it", slog.Time("not_after", leaf.NotAfter))
			}
			return nil
		}
	} else if !force {
		// A file missing for a moment (replaced by delete and create) is
		// retried on the next tick; report it once per content change.
		var sum [sha256.Size]byte
		if sum == r.seen {
			return err
		}
		r.seen = sum
	}
	if old := r.cur.Load(); old != nil {
		r.log.Warn("TLS reload failed; serving the previous certificate", slog.String("trigger", trigger),
			slog.Any("error", err), slog.String("serial", old.cert.Leaf.SerialNumber.Text(16)),
			slog.Time("not_after", old.cert.Leaf.NotAfter))
	}
	return err
}

func (r *Reloader) read() (certPEM, keyPEM, caPEM []byte, err error) {
	if certPEM, err = os.ReadFile(r.cfg.CertFile); err != nil {
		return nil, nil, nil, fmt.Errorf("certificate file: %w", err)
	}
	if keyPEM, err = os.ReadFile(r.cfg.KeyFile); err != nil {
		return nil, nil, nil, fmt.Errorf("key file: %w", err)
	}
	if r.cfg.ClientCAFile != "" {
		if caPEM, err = os.ReadFile(r.cfg.ClientCAFile); err != nil {
			return nil, nil, nil, fmt.Errorf("client CA file: %w", err)
		}
	}
	return certPEM, keyPEM, caPEM, nil
}

func fingerprint(parts ...[]byte) [sha256.Size]byte {
	h := sha256.New()
	for _, p := range parts {
		fmt.Fprintf(h, "%d:", len(p))
		h.Write(p)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	return sum
}

func (r *Reloader) parse(certPEM, keyPEM, caPEM []byte) (*material, error) {
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, fmt.Errorf("certificate %s and key %s: %w", r.cfg.CertFile, r.cfg.KeyFile, err)
	}
	m := &material{cert: &cert}
	if r.cfg.ClientCAFile == "" {
		return m, nil
	}
	pool, err := ParseCertPool(caPEM)
	if err != nil {
		return nil, fmt.Errorf("client CA file %s: %w", r.cfg.ClientCAFile, err)
	}
	m.client = &tls.Config{
		MinVersion: r.cfg.MinVersion, NextProtos: r.cfg.NextProtos, GetCertificate: r.getCertificate,
		ClientAuth: tls.VerifyClientCertIfGiven, ClientCAs: pool,
	}
	return m, nil
}

// ParseCertPool parses a PEM bundle of CA certificates. Unlike
// x509.CertPool.AppendCertsFromPEM it refuses a bundle with a block that
// does not parse, or with no certificate at all.
func ParseCertPool(data []byte) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	n := 0
	for rest := bytes.TrimSpace(data); len(rest) > 0; rest = bytes.TrimSpace(rest) {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			return nil, errors.New("data after the last PEM block is not PEM")
		}
		if block.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			return nil, fmt.Errorf("certificate %d: %w", n+1, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, errors.New("no PEM certificate found")
	}
	return pool, nil
}
