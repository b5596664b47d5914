// Package tlsreload serves a TLS server's certificate, and the CA pool its
// client certificates are verified against, from PEM files that may change
// while the server runs: cert-manager, an ACME client or an operator
// replaces them, and new handshakes take the new files without a restart.
//
// A Reloader loads the files once in New (an error there is a start-up
// error), then again when their content changes (Run polls them) or when
// asked (Reload, on SIGHUP). A load that fails (a half-written file, a key
// that does not match its certificate) keeps the previous material and logs
// a warning; a success logs the new certificate's serial and expiry.
// Handshakes read the current material through tls.Config.GetCertificate
// and, with a client CA file, GetConfigForClient.
package tlsreload
