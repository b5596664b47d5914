package webhook

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of a signed delivery.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// secretPrefix starts a secret's text form.
const secretPrefix = "whsec_"

// Secret is an HMAC key.
type Secret []byte

// ParseSecret reads "whsec_<base64>" (the prefix may be left out).
func ParseSecret(s string) (Secret, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(s, secretPrefix))
	if err != nil {
		return nil, fmt.Errorf("webhook: secret: not base64 after %s: %w", secretPrefix, err)
	}
	if len(b) < 16 {
		return nil, fmt.Errorf("webhook: secret: %d bytes, want at least 16", len(b))
	}
	return Secret(b), nil
}

// String is the secret's text form.
func (s Secret) String() string { return secretPrefix + base64.StdEncoding.EncodeToString(s) }

// signature is the base64 HMAC-SHA256 of id.timestamp.body.
func (s Secret) signature(id string, ts int64, body []byte) string {
	m := hmac.New(sha256.New, s)
	m.Write([]byte(id))
	m.Write([]byte{'.'})
	m.Write([]byte(strconv.FormatInt(ts, 10)))
	m.Write([]byte{'.'})
	m.Write(body)
	return base64.StdEncoding.EncodeToString(m.Sum(nil))
}

// Sign sets the delivery headers on h for message id with body at time
// at: one v1 signature per secret (two during a rotation).
func Sign(h http.Header, secrets []Secret, id string, at time.Time, body []byte) {
	ts := at.Unix()
	sigs := make([]string, len(secrets))
	for i, s := range secrets {
		sigs[i] = "v1," + s.signature(id, ts, body)
	}
	h.Set(HeaderID, id)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts, 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
}

// ErrSignature is wrapped by Verify's errors.
var ErrSignature = errors.New("webhook: signature not valid")

// Verify checks a delivery as a receiver does: its timestamp within
// tolerance of now (replays of old deliveries fail), and one of its v1
// signatures made by one of secrets.
func Verify(h http.Header, body []byte, secrets []Secret, now time.Time, tolerance time.Duration) error {
	id, tsText, sigs := h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature)
	if id == "" || tsText == "" || sigs == "" {
		return fmt.Errorf("%w: missing webhook-id, webhook-timestamp or webhook-signature", ErrSignature)
	}
	ts, err := strconv.ParseInt(tsText, 10, 64)
	if err != nil {
		return fmt.Errorf("%w: timestamp %q", ErrSignature, tsText)
	}
	if d := now.Sub(time.Unix(ts, 0)); d > tolerance || d < -tolerance {
		return fmt.Errorf("%w: timestamp %s is outside %s of now", ErrSignature, time.Unix(ts, 0).UTC().Format(time.RFC3339), tolerance)
	}
	for _, s := range secrets {
		want := s.signature(id, ts, body)
		for _, got := range strings.Fields(sigs) {
			if v, sig, ok := strings.Cut(got, ","); ok && v == "v1" && hmac.Equal([]byte(sig), []byte(want)) {
				return nil
			}
		}
	}
	return fmt.Errorf("%w: no v1 signature matches", ErrSignature)
}
