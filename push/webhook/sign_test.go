package webhook_test

import (
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/syncgate/syncgate/push/webhook"
)

// The Standard Webhooks test vector, whose signature was also computed by
// hand: printf '%s' 'msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330.{"test": 2432232314}' |
// openssl dgst -sha256 -mac HMAC -macopt hexkey:$(echo -n MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw | base64 -d | xxd -p -c 256) -binary | base64
const (
	vectorSecret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	vectorID     = "msg_p5jXN8AQM9LWM0D4loKWxJek"
	vectorTS     = 1614265330
	vectorBody   = `{"test": 2432232314}`
	vectorSig    = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
)

func TestSignVector(t *testing.T) {
	s, err := webhook.ParseSecret(vectorSecret)
	if err != nil {
		t.Fatal(err)
	}
	h := http.Header{}
	at := time.Unix(vectorTS, 0)
	webhook.Sign(h, []webhook.Secret{s}, vectorID, at, []byte(vectorBody))
	if h.Get("webhook-signature") != vectorSig || h.Get("webhook-id") != vectorID || h.Get("webhook-timestamp") != "1614265330" {
		t.Fatalf("headers %v, want signature %s", h, vectorSig)
	}
	if err := webhook.Verify(h, []byte(vectorBody), []webhook.Secret{s}, at.Add(time.Minute), 5*time.Minute); err != nil {
		t.Fatal(err)
	}
	if s.String() != vectorSecret {
		t.Errorf("String() = %s", s)
	}
}

// During a rotation a delivery carries both signatures, and a receiver
// holding either secret accepts it; a tampered body, another id, a stale
// timestamp or a stranger's secret are refused.
func TestVerifyRefuses(t *testing.T) {
	old, _ := webhook.ParseSecret("whsec_" + "b2xkLXNlY3JldC0xMjM0NTY3ODkwMTI=")
	cur, _ := webhook.ParseSecret("whsec_" + "bmV3LXNlY3JldC0xMjM0NTY3ODkwMTI=")
	other, _ := webhook.ParseSecret("whsec_" + "b3RoZXItc2VjcmV0LTEyMzQ1Njc4OTA=")
	now := time.Unix(1_800_000_000, 0)
	h := http.Header{}
	webhook.Sign(h, []webhook.Secret{cur, old}, "msg_1", now, []byte("body"))
	for _, s := range []webhook.Secret{old, cur} {
		if err := webhook.Verify(h, []byte("body"), []webhook.Secret{s}, now, time.Minute); err != nil {
			t.Errorf("rotation: %v", err)
		}
	}
	tampered := h.Clone()
	tampered.Set("webhook-id", "msg_2")
	for name, tc := range map[string]struct {
		h       http.Header
		body    string
		secrets []webhook.Secret
		now     time.Time
	}{
		"tampered body":   {h, "bodx", []webhook.Secret{cur}, now},
		"another id":      {tampered, "body", []webhook.Secret{cur}, now},
		"stale":           {h, "body", []webhook.Secret{cur}, now.Add(10 * time.Minute)},
		"from the future": {h, "body", []webhook.Secret{cur}, now.Add(-10 * time.Minute)},
		"other secret":    {h, "body", []webhook.Secret{other}, now},
		"no headers":      {http.Header{}, "body", []webhook.Secret{cur}, now},
	} {
		if err := webhook.Verify(tc.h, []byte(tc.body), tc.secrets, tc.now, 5*time.Minute); !errors.Is(err, webhook.ErrSignature) {
			t.Errorf("%s: %v, want ErrSignature", name, err)
		}
	}
	if _, err := webhook.ParseSecret("whsec_c2hvcnQ="); err == nil {
		t.Error("a 5-byte secret was accepted")
	}
}
