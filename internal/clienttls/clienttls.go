// Package clienttls is the TLS block of a client's configuration (a Kafka
// broker, a Redis server): whether to use TLS, whom to trust, which client
// certificate to present. Each client names it in its YAML as tls.
package clienttls

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// Config configures the TLS connections of one client.
type Config struct {
	// Enable turns TLS on; the other fields are ignored without it.
	Enable bool `yaml:"enable"`
	// CAFile is a PEM bundle of the CAs that sign the servers' certificates
	// (default: the system pool).
	CAFile string `yaml:"ca_file"`
	// CertFile and KeyFile are a PEM client certificate and key (mutual TLS).
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ServerName overrides the name checked against the servers' certificates.
	ServerName string `yaml:"server_name"`
	// InsecureSkipVerify disables certificate verification. Tests only.
	InsecureSkipVerify bool `yaml:"insecure_skip_verify"`
}

// Validate checks c without reading its files; field names the block in
// error messages (e.g. "kafka.tls").
func (c Config) Validate(field string) error {
	if !c.Enable {
		return nil
	}
	if (c.CertFile == "") != (c.KeyFile == "") {
		return fmt.Errorf("%s.cert_file: cert_file and key_file go together", field)
	}
	return nil
}

// Build reads c's files and returns the client's tls.Config (TLS 1.2 or
// later), or nil when TLS is not enabled.
func (c Config) Build(field string) (*tls.Config, error) {
	if !c.Enable {
		return nil, nil
	}
	if err := c.Validate(field); err != nil {
		return nil, err
	}
	tc := &tls.Config{
		MinVersion:         tls.VersionTLS12,
		ServerName:         c.ServerName,
		InsecureSkipVerify: c.InsecureSkipVerify, //nolint:gosec // opt-in, documented as tests only
	}
	if c.CAFile != "" {
		pem, err := os.ReadFile(c.CAFile)
		if err != nil {
			return nil, fmt.Errorf("%s.ca_file: %w", field, err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("%s.ca_file: %w in %s", field, errNoPEM, c.CAFile)
		}
		tc.RootCAs = pool
	}
	if c.CertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.CertFile, c.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("%s.cert_file: %w", field, err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}

var errNoPEM = errors.New("no PEM certificate")
