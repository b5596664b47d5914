package node

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"time"

	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/internal/tlsreload"
)

// TLSConfig serves the API listener over HTTPS, and with ClientCAFile
// authenticates callers by their client certificate (mTLS). The admin
// listener stays plain HTTP: keep it on a private address.
type TLSConfig struct {
	// CertFile and KeyFile are the server's PEM certificate chain and key;
	// both or neither. They are reloaded when they change and on SIGHUP.
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
	// ClientCAFile is a PEM bundle of the CAs whose client certificates
	// are accepted. Clients are asked for one; a certificate that does not
	// verify fails the handshake, a verified one is the caller's credential
	// (a credential source like auth.api_keys: routes default to auth
	// required), and a caller without one may still send a bearer token.
	ClientCAFile string `yaml:"client_ca_file"`
	// MinVersion is the lowest TLS version accepted: 1.2 (default) or 1.3.
	MinVersion string `yaml:"min_version"`
	// ClientPrincipal picks the principal from a verified client
	// certificate: cn (default: the Subject Common Name), san_dns,
	// san_email or san_uri (the first SAN of that kind). A certificate
	// without that field is refused (401).
	ClientPrincipal string `yaml:"client_principal"`
	// ReloadInterval is how often the files are read for a change (default 5s).
	ReloadInterval time.Duration `yaml:"reload_interval"`
}

// Enabled reports whether the API listener serves HTTPS.
func (t TLSConfig) Enabled() bool { return t.CertFile != "" }

func (t *TLSConfig) setDefaults() {
	if t.MinVersion == "" {
		t.MinVersion = "1.2"
	}
	if t.ClientPrincipal == "" {
		t.ClientPrincipal = string(middleware.CertCN)
	}
	if t.ReloadInterval == 0 {
		t.ReloadInterval = tlsreload.DefaultInterval
	}
}

var tlsVersions = map[string]uint16{"1.2": tls.VersionTLS12, "1.3": tls.VersionTLS13}

// reloaderConfig is what the API listener is served with.
func (t TLSConfig) reloaderConfig(log *slog.Logger) tlsreload.Config {
	return tlsreload.Config{CertFile: t.CertFile, KeyFile: t.KeyFile, ClientCAFile: t.ClientCAFile,
		MinVersion: tlsVersions[t.MinVersion], NextProtos: []string{"h2", "http/1.1"},
		Interval: t.ReloadInterval, Logger: log}
}

// authConfigured reports whether any credential source is configured: the
// auth section or client certificates.
func (c *Config) authConfigured() bool { return c.Auth.Configured() || c.TLS.ClientCAFile != "" }

// authenticator is the auth section's chain, with client certificates
// first when tls.client_ca_file is set; nil without any credential source.
func (c *Config) authenticator(log *slog.Logger) (middleware.Authenticator, *middleware.JWT, error) {
	a, jwt, err := c.Auth.authenticator(log)
	if err != nil || c.TLS.ClientCAFile == "" {
		return a, jwt, err
	}
	certs, err := middleware.NewClientCerts(middleware.CertRule(c.TLS.ClientPrincipal))
	if err != nil {
		return nil, nil, err
	}
	chain := middleware.Chain{certs}
	if a != nil {
		chain = append(chain, a)
	}
	return chain, jwt, nil
}

// validateTLS checks the tls section, and that its files load: a
// certificate that cannot be served is a start-up error, not a handshake
// failure later.
func validateTLS(c *Config, bad func(field, format string, args ...any)) {
	t := c.TLS
	if _, ok := tlsVersions[t.MinVersion]; !ok {
		bad("tls.min_version", "%q is not 1.2 or 1.3", t.MinVersion)
	}
	if _, err := middleware.NewClientCerts(middleware.CertRule(t.ClientPrincipal)); err != nil {
		bad("tls.client_principal", "%q is not cn, san_dns, san_email or san_uri", t.ClientPrincipal)
	}
	switch {
	case t.CertFile == "" && t.KeyFile != "":
		bad("tls.cert_file", "is empty but tls.key_file is set: give both or neither")
	case t.CertFile != "" && t.KeyFile == "":
		bad("tls.key_file", "is empty but tls.cert_file is set: give both or neither")
	case t.CertFile == "" && t.ClientCAFile != "":
		bad("tls.client_ca_file", "needs tls.cert_file and tls.key_file: client certificates come only over TLS")
	case t.CertFile != "":
		if _, err := tlsreload.New(t.reloaderConfig(nil)); err != nil {
			bad("tls", "%v", err)
		}
	}
}

// Reload re-reads what a running node can take without a restart: the TLS
// certificate, key and client CAs (cmd/syncgate calls it on SIGHUP). A
// failed reload keeps the previous certificate; the error says why.
func (n *Node) Reload() error {
	if n.tls == nil {
		n.log.Info("reload: nothing to reload (no tls section)")
		return nil
	}
	if err := n.tls.Reload(); err != nil {
		return fmt.Errorf("reload TLS: %w", err)
	}
	return nil
}
