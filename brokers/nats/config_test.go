package nats_test

import (
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/nats"
)

func TestConfigDefaults(t *testing.T) {
	var c nats.Config
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("the defaults do not validate: %v", err)
	}
	if c.URL != "nats://127.0.0.1:4222" || c.Mode != nats.ModeCore || c.Replicas != 1 || c.ReplyPrefix != "syncgate.reply." {
		t.Errorf("defaults: %+v", c)
	}
}

// Every invalid field is reported, named as in the configuration file.
func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		field string
		set   func(*nats.Config)
	}{
		{"nats.url", func(c *nats.Config) { c.URL = "http://example.com" }},
		{"nats.url", func(c *nats.Config) { c.URL = "nats://127.0.0.1:4222, " }},
		{"nats.user", func(c *nats.Config) { c.User, c.Token = "u", "t" }},
		{"nats.user", func(c *nats.Config) { c.Password = "p" }},
		{"nats.mode", func(c *nats.Config) { c.Mode = "streams" }},
		{"nats.reply_prefix", func(c *nats.Config) { c.ReplyPrefix = "replies" }},
		{"nats.reply_prefix", func(c *nats.Config) { c.ReplyPrefix = "replies.*." }},
		{"nats.stream_prefix", func(c *nats.Config) { c.StreamPrefix = "A.B" }},
		{"nats.storage", func(c *nats.Config) { c.Storage = "disk" }},
		{"nats.replicas", func(c *nats.Config) { c.Replicas = 7 }},
		{"nats.max_deliveries", func(c *nats.Config) { c.MaxDeliveries = -1 }},
		{"nats.prefetch", func(c *nats.Config) { c.Prefetch = -1 }},
		{"nats.dead_letter", func(c *nats.Config) { c.DeadLetter = "a..b" }},
		{"nats.dead_letter", func(c *nats.Config) { c.DeadLetter = "syncgate.reply.dlq" }},
		{"nats.body_bucket", func(c *nats.Config) { c.BodyBucket = "a.b" }},
		{"nats.max_retry_delay", func(c *nats.Config) { c.RetryDelay, c.MaxRetryDelay = time.Second, time.Millisecond }},
		{"nats.ack_wait", func(c *nats.Config) { c.AckWait = 10 * time.Millisecond }},
		{"nats.confirm_timeout", func(c *nats.Config) { c.ConfirmTimeout = -time.Second }},
		{"nats.reconnect_attempts", func(c *nats.Config) { c.ReconnectAttempts = -1 }},
		{"nats.tls.cert_file", func(c *nats.Config) { c.TLS.Enable, c.TLS.CertFile = true, "cert.pem" }},
	} {
		t.Run(tc.field, func(t *testing.T) {
			var c nats.Config
			c.SetDefaults()
			tc.set(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.field+":") {
				t.Errorf("Validate() = %v, want an error naming %s", err, tc.field)
			}
		})
	}
}

func TestConfigValidateReportsEveryField(t *testing.T) {
	c := nats.Config{Mode: "x", Storage: "y"}
	c.SetDefaults()
	err := c.Validate()
	for _, field := range []string{"nats.mode:", "nats.storage:"} {
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("Validate() = %v, want it to name %s", err, field)
		}
	}
}

func TestStreamName(t *testing.T) {
	c := nats.Config{StreamPrefix: "SG_"}
	for subject, want := range map[string]string{
		"orders.create": "SG_orders_create",
		"a-b.c":         "SG_a-b_c",
	} {
		if got := c.StreamName(subject); got != want {
			t.Errorf("StreamName(%q) = %q, want %q", subject, got, want)
		}
	}
	// Subjects that map to the same characters get names of their own.
	a, b := c.StreamName("a.b"), c.StreamName("a_b")
	if a == b || !strings.HasPrefix(b, "SG_a_b_") {
		t.Errorf("StreamName(a.b) = %q, StreamName(a_b) = %q", a, b)
	}
}

func TestConfigRedacted(t *testing.T) {
	c := nats.Config{URL: "nats://u:secret@h1:4222,nats://h2:4222", Password: "pw", Token: "tok"}
	r := c.Redacted()
	if s := r.URL + r.Password + r.Token; strings.Contains(s, "secret") || strings.Contains(s, "pw") || strings.Contains(s, "tok") {
		t.Errorf("Redacted() = %+v", r)
	}
	if c.Password != "pw" {
		t.Error("Redacted changed the original")
	}
}
