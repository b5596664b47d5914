package kafka

import (
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"go.yaml.in/yaml/v3"
)

func TestConfigDefaults(t *testing.T) {
	c := Config{Brokers: []string{"127.0.0.1:9092"}}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"client_id", c.ClientID, "syncgate"},
		{"acks", c.Acks, AcksLeader},
		{"batch_timeout", c.BatchTimeout, time.Duration(0)},
		{"max_attempts", c.MaxAttempts, 3},
		{"auto_create_topics", c.AutoCreateTopics, false},
		{"commit_interval", c.CommitInterval, time.Second},
		{"max_wait", c.MaxWait, 500 * time.Millisecond},
		{"read_backoff_min", c.ReadBackoffMin, 50 * time.Millisecond},
		{"inbox_partitions", c.InboxPartitions, 1},
		{"replication_factor", c.ReplicationFactor, -1},
		{"max_deliveries", c.MaxDeliveries, 5},
		{"dead_letter_topic", DeadLetterTopic(c, "orders"), "orders.dlt"},
	} {
		if tc.got != tc.want {
			t.Errorf("default %s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if got := c.requiredAcks(); got != kafkago.RequireOne {
		t.Errorf("acks leader maps to %v, want RequireOne", got)
	}
	c.Acks = "ALL"
	if got := c.requiredAcks(); got != kafkago.RequireAll {
		t.Errorf("acks all maps to %v, want RequireAll", got)
	}
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		name   string
		change func(*Config)
		want   string // substring of the error; the field's name
	}{
		{"no brokers", func(c *Config) { c.Brokers = nil }, "kafka.brokers:"},
		{"broker without port", func(c *Config) { c.Brokers = []string{"localhost"} }, "kafka.brokers:"},
		{"acks none", func(c *Config) { c.Acks = "none" }, "kafka.acks:"},
		{"acks zero", func(c *Config) { c.Acks = "0" }, "kafka.acks:"},
		{"negative batch timeout", func(c *Config) { c.BatchTimeout = -time.Millisecond }, "kafka.batch_timeout:"},
		{"batch timeout too long", func(c *Config) { c.BatchTimeout = 2 * time.Second }, "kafka.batch_timeout:"},
		{"negative max attempts", func(c *Config) { c.MaxAttempts = -1 }, "kafka.max_attempts:"},
		{"max deliveries below -1", func(c *Config) { c.MaxDeliveries = -2 }, "kafka.max_deliveries:"},
		{"read backoff max below min", func(c *Config) { c.ReadBackoffMax = time.Millisecond }, "kafka.read_backoff_max:"},
		{"retry backoff max below min", func(c *Config) { c.RetryBackoffMax = time.Millisecond }, "kafka.retry_backoff_max:"},
		{"heartbeat too slow", func(c *Config) { c.HeartbeatInterval = 5 * time.Second }, "kafka.heartbeat_interval:"},
		{"replication factor zero", func(c *Config) { c.ReplicationFactor = -2 }, "kafka.replication_factor:"},
		{"unknown sasl mechanism", func(c *Config) { c.SASL = SASL{Mechanism: "GSSAPI", Username: "u", Password: "p"} }, "kafka.sasl.mechanism:"},
		{"sasl without user", func(c *Config) { c.SASL = SASL{Mechanism: "PLAIN", Password: "p"} }, "kafka.sasl.username:"},
		{"sasl without password", func(c *Config) { c.SASL = SASL{Mechanism: "SCRAM-SHA-256", Username: "u"} }, "kafka.sasl.password:"},
		{"tls cert without key", func(c *Config) { c.TLS = TLS{Enable: true, CertFile: "c.pem"} }, "kafka.tls.cert_file:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := Config{Brokers: []string{"127.0.0.1:9092"}}
			c.SetDefaults()
			tc.change(&c)
			err := c.Validate()
			if err == nil || !strings.HasPrefix(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want an error starting with %q", err, tc.want)
			}
			if _, err := NewPublisher(c); err == nil {
				t.Fatal("NewPublisher accepted an invalid config")
			}
		})
	}
}

func TestConfigTLSFiles(t *testing.T) {
	c := Config{Brokers: []string{"127.0.0.1:9092"}, TLS: TLS{Enable: true, CAFile: t.TempDir() + "/missing.pem"}}
	if _, err := NewSubscriber(c); err == nil || !strings.Contains(err.Error(), "kafka.tls.ca_file") {
		t.Fatalf("NewSubscriber with a missing CA file: %v, want a kafka.tls.ca_file error", err)
	}
}

func TestConfigYAML(t *testing.T) {
	const doc = `
brokers: [kafka-1:9092, kafka-2:9092]
client_id: gw
acks: all
batch_timeout: 2ms
auto_create_topics: true
max_wait: 300ms
commit_interval: 2s
read_backoff_min: 10ms
sasl:
  mechanism: SCRAM-SHA-512
  username: gateway
  password: s3cret
tls:
  enable: true
  ca_file: /etc/kafka/ca.pem
  insecure_skip_verify: false
`
	var c Config
	if err := yaml.Unmarshal([]byte(doc), &c); err != nil {
		t.Fatal(err)
	}
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if len(c.Brokers) != 2 || c.ClientID != "gw" || c.Acks != "all" || c.BatchTimeout != 2*time.Millisecond ||
		!c.AutoCreateTopics || c.MaxWait != 300*time.Millisecond || c.CommitInterval != 2*time.Second ||
		c.ReadBackoffMin != 10*time.Millisecond || c.SASL.Mechanism != MechanismSCRAMSHA512 ||
		c.SASL.Password != "s3cret" || !c.TLS.Enable || c.TLS.CAFile != "/etc/kafka/ca.pem" {
		t.Fatalf("decoded %+v", c)
	}
	r := c.Redacted()
	if r.SASL.Password != "***" || c.SASL.Password != "s3cret" {
		t.Fatalf("Redacted: password %q (original now %q)", r.SASL.Password, c.SASL.Password)
	}
}
