package kafka

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/sasl"
	"github.com/segmentio/kafka-go/sasl/plain"
	"github.com/segmentio/kafka-go/sasl/scram"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/internal/clienttls"
)

// Acknowledgement levels accepted by Config.Acks. There is deliberately no
// "none": a publish the broker never acknowledged is a request silently lost.
const (
	AcksLeader = "leader" // the partition leader wrote the record (kafka-go RequireOne)
	AcksAll    = "all"    // every in-sync replica wrote the record (kafka-go RequireAll)
)

// DefaultMaxDeliveries is Config.MaxDeliveries when unset.
const DefaultMaxDeliveries = 5

// SASL mechanisms accepted by SASL.Mechanism.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// Config configures the Kafka backend. The zero value plus Brokers is a
// working configuration once SetDefaults ran; NewPublisher and NewSubscriber
// apply the defaults and validate on their own copy. The syncgate
// configuration embeds it under broker.kafka, hence the field names in
// Validate's messages ("kafka.acks: ...").
type Config struct {
	// Logger receives the backend's log lines, under component
	// kafka.publisher or kafka.subscriber (default slog.Default()).
	Logger *slog.Logger `yaml:"-"`
	// Brokers are the bootstrap addresses, host:port. Required.
	Brokers []string `yaml:"brokers"`
	// ClientID is sent to the brokers with every request (default "syncgate").
	ClientID string `yaml:"client_id"`

	// Acks is how many replicas must hold a published record before Publish
	// returns: "leader" (default) or "all".
	Acks string `yaml:"acks"`
	// BatchTimeout is how long a record published to an idle partition
	// waits for others to share its produce request (default 0: none).
	// Records published while a request to their partition is in flight
	// wait for it and go together in the next one, so batches grow with the
	// load without a timer; a linger only adds latency. (kafka-go's Writer,
	// not used here, waits up to 1s by default: a 2s request/reply.)
	BatchTimeout time.Duration `yaml:"batch_timeout"`
	// BatchSize is the most records one produce request carries (default 500).
	BatchSize int `yaml:"batch_size"`
	// MaxMessageBytes bounds one record (key, headers and body) on publish and
	// is the fetch size of a consumer (default 1 MiB + 64 KiB: a 1 MiB body,
	// the gateway's default limit, with its headers). Topics this package
	// creates get a max.message.bytes to match; topics created otherwise need
	// it too, the broker default (1 MiB + 12 bytes) is smaller. A larger
	// record already on a topic is still consumed: brokers return a record
	// batch larger than the fetch size when it is the first one.
	MaxMessageBytes int `yaml:"max_message_bytes"`
	// WriteTimeout bounds one produce attempt (default 5s).
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// MaxAttempts is how many times a produce request is tried before
	// Publish fails (default 3; the pauses are 50ms, then 200ms). With the
	// broker down Publish fails after about 250ms.
	MaxAttempts int `yaml:"max_attempts"`

	// AutoCreateTopics lets a publish to, or a subscription on, a missing
	// topic create it (default false). Off, a publish to a missing topic fails
	// with brokers.ErrUnroutable and Subscribe on one returns it, so a typo in
	// a route is an error instead of a new topic nobody consumes. Reply inbox
	// topics are always created: they belong to the gateway node.
	AutoCreateTopics bool `yaml:"auto_create_topics"`
	// Partitions is the partition count of a service topic Subscribe creates
	// when AutoCreateTopics is on (default 4). A topic created by a publish
	// gets the broker's num.partitions.
	Partitions int `yaml:"partitions"`
	// ReplicationFactor of the topics this package creates (default -1: the
	// broker's default.replication.factor).
	ReplicationFactor int `yaml:"replication_factor"`
	// InboxPartitions is the partition count of a reply inbox topic (default
	// 1). Replies are handled in parallel whatever the count (by correlation
	// id, see Subscriber); each partition costs a fetch stream on the node
	// and a produce share in every service's reply, so one partition makes
	// the fewest, fullest requests. A topic that exists keeps its count.
	InboxPartitions int `yaml:"inbox_partitions"`
	// InboxRetention is the retention.ms of a reply inbox topic (default
	// 24h, the result store's TTL): replies that arrive while the node is
	// down are consumed when it is back, within that time.
	InboxRetention time.Duration `yaml:"inbox_retention"`

	// MaxWait is how long a fetch waits for records on the broker (default
	// 500ms). Records are returned as soon as there is one; MaxWait only
	// bounds how quickly a consumer notices it should stop.
	MaxWait time.Duration `yaml:"max_wait"`
	// CommitInterval is how often consumed offsets are committed (default
	// 1s), and at the end of a subscription or a group generation. A crash
	// redelivers at most this much.
	CommitInterval time.Duration `yaml:"commit_interval"`
	// ReadBackoffMin and ReadBackoffMax bound the pause between failed
	// fetches (defaults 50ms and 1s).
	ReadBackoffMin time.Duration `yaml:"read_backoff_min"`
	ReadBackoffMax time.Duration `yaml:"read_backoff_max"`
	// RetryBackoffMin and RetryBackoffMax bound the pause before a record
	// whose handler failed is handed to it again (defaults 100ms and 5s).
	RetryBackoffMin time.Duration `yaml:"retry_backoff_min"`
	RetryBackoffMax time.Duration `yaml:"retry_backoff_max"`

	// MaxDeliveries is how many times a service subscription (not a reply
	// inbox) hands one record to a handler that keeps failing before it
	// gives up on it: the record goes to the dead-letter topic, the
	// subscription's DeadLetter callback is called, and the partition moves
	// on (default 5, as RabbitMQ's; -1: never give up, the record is retried
	// until it succeeds or its partition moves to another member).
	MaxDeliveries int `yaml:"max_deliveries"`
	// DeadLetterTopic receives the records given up on (default "": the
	// record's topic plus ".dlt", one dead-letter topic per topic). A set
	// name is shared by every topic; the header kafka_dlt-original-topic
	// tells them apart. It is created, with the partitions of the record's
	// topic, when the first record goes there, whatever auto_create_topics
	// says: it belongs to the subscription.
	DeadLetterTopic string `yaml:"dead_letter_topic"`

	// HeartbeatInterval is the consumer group heartbeat (default 1s); a
	// member notices a rebalance within it.
	HeartbeatInterval time.Duration `yaml:"heartbeat_interval"`
	// SessionTimeout: a member silent this long is evicted and its
	// partitions reassigned (default 10s).
	SessionTimeout time.Duration `yaml:"session_timeout"`
	// RebalanceTimeout is how long the coordinator waits for members to
	// rejoin during a rebalance (default 30s).
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	// JoinGroupBackoff is the pause before rejoining after a failed join
	// (default 1s; kafka-go's is 5s).
	JoinGroupBackoff time.Duration `yaml:"join_group_backoff"`

	// DialTimeout bounds connecting to a broker, TLS and SASL included
	// (default 3s).
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// MetadataTTL is how long cluster metadata is cached (default 5s).
	MetadataTTL time.Duration `yaml:"metadata_ttl"`

	SASL SASL `yaml:"sasl"`
	TLS  TLS  `yaml:"tls"`
}

// SASL configures authentication. An empty Mechanism disables it.
type SASL struct {
	// Mechanism is "PLAIN", "SCRAM-SHA-256" or "SCRAM-SHA-512".
	Mechanism string `yaml:"mechanism"`
	Username  string `yaml:"username"`
	Password  string `yaml:"password"`
}

// TLS configures encrypted connections to the brokers (see
// internal/clienttls; the same block as a Redis client's).
type TLS = clienttls.Config

// SetDefaults fills every unset field with its default.
func (c *Config) SetDefaults() {
	brokers.SetDefault(&c.ClientID, "syncgate")
	if c.Acks == "" {
		c.Acks = AcksLeader
	}
	brokers.SetDefault(&c.BatchSize, 500)
	brokers.SetDefault(&c.MaxMessageBytes, 1<<20+64<<10)
	brokers.SetDefault(&c.WriteTimeout, 5*time.Second)
	brokers.SetDefault(&c.MaxAttempts, 3)
	brokers.SetDefault(&c.Partitions, 4)
	brokers.SetDefault(&c.ReplicationFactor, -1)
	brokers.SetDefault(&c.InboxPartitions, 1)
	brokers.SetDefault(&c.InboxRetention, 24*time.Hour)
	brokers.SetDefault(&c.MaxWait, 500*time.Millisecond)
	brokers.SetDefault(&c.CommitInterval, time.Second)
	brokers.SetDefault(&c.ReadBackoffMin, 50*time.Millisecond)
	brokers.SetDefault(&c.ReadBackoffMax, time.Second)
	brokers.SetDefault(&c.RetryBackoffMin, 100*time.Millisecond)
	brokers.SetDefault(&c.RetryBackoffMax, 5*time.Second)
	brokers.SetDefault(&c.MaxDeliveries, DefaultMaxDeliveries)
	brokers.SetDefault(&c.HeartbeatInterval, time.Second)
	brokers.SetDefault(&c.SessionTimeout, 10*time.Second)
	brokers.SetDefault(&c.RebalanceTimeout, 30*time.Second)
	brokers.SetDefault(&c.JoinGroupBackoff, time.Second)
	brokers.SetDefault(&c.DialTimeout, 3*time.Second)
	brokers.SetDefault(&c.MetadataTTL, 5*time.Second)
}

// Validate reports the first invalid field, named as in the configuration
// file. Call SetDefaults first.
func (c *Config) Validate() error {
	if len(c.Brokers) == 0 {
		return errors.New("kafka.brokers: at least one broker address is required")
	}
	for _, b := range c.Brokers {
		if _, _, err := net.SplitHostPort(b); err != nil {
			return fmt.Errorf("kafka.brokers: %q is not host:port", b)
		}
	}
	switch strings.ToLower(c.Acks) {
	case AcksLeader, AcksAll:
	default:
		return fmt.Errorf("kafka.acks: must be %q or %q, got %q (acks none would lose requests silently)", AcksLeader, AcksAll, c.Acks)
	}
	durations := []struct {
		name string
		v    time.Duration
	}{
		{"write_timeout", c.WriteTimeout},
		{"inbox_retention", c.InboxRetention}, {"max_wait", c.MaxWait},
		{"commit_interval", c.CommitInterval}, {"read_backoff_min", c.ReadBackoffMin},
		{"read_backoff_max", c.ReadBackoffMax}, {"retry_backoff_min", c.RetryBackoffMin},
		{"retry_backoff_max", c.RetryBackoffMax}, {"heartbeat_interval", c.HeartbeatInterval},
		{"session_timeout", c.SessionTimeout}, {"rebalance_timeout", c.RebalanceTimeout},
		{"join_group_backoff", c.JoinGroupBackoff}, {"dial_timeout", c.DialTimeout},
		{"metadata_ttl", c.MetadataTTL},
	}
	for _, d := range durations {
		if d.v <= 0 {
			return fmt.Errorf("kafka.%s: must be positive, got %s", d.name, d.v)
		}
	}
	if c.BatchTimeout < 0 {
		return fmt.Errorf("kafka.batch_timeout: must not be negative, got %s", c.BatchTimeout)
	}
	if c.BatchTimeout > time.Second {
		return fmt.Errorf("kafka.batch_timeout: %s adds that much to every request; use at most 1s", c.BatchTimeout)
	}
	if c.ReadBackoffMax < c.ReadBackoffMin {
		return fmt.Errorf("kafka.read_backoff_max: %s is below read_backoff_min %s", c.ReadBackoffMax, c.ReadBackoffMin)
	}
	if c.RetryBackoffMax < c.RetryBackoffMin {
		return fmt.Errorf("kafka.retry_backoff_max: %s is below retry_backoff_min %s", c.RetryBackoffMax, c.RetryBackoffMin)
	}
	if c.HeartbeatInterval*3 > c.SessionTimeout {
		return fmt.Errorf("kafka.heartbeat_interval: %s must be at most a third of session_timeout %s", c.HeartbeatInterval, c.SessionTimeout)
	}
	counts := []struct {
		name string
		v    int
	}{
		{"batch_size", c.BatchSize}, {"max_message_bytes", c.MaxMessageBytes},
		{"max_attempts", c.MaxAttempts}, {"partitions", c.Partitions},
		{"inbox_partitions", c.InboxPartitions},
	}
	for _, n := range counts {
		if n.v <= 0 {
			return fmt.Errorf("kafka.%s: must be positive, got %d", n.name, n.v)
		}
	}
	if c.MaxDeliveries < -1 {
		return fmt.Errorf("kafka.max_deliveries: must be positive, or -1 (never dead-letter), got %d", c.MaxDeliveries)
	}
	if c.ReplicationFactor == 0 || c.ReplicationFactor < -1 {
		return fmt.Errorf("kafka.replication_factor: must be -1 (broker default) or positive, got %d", c.ReplicationFactor)
	}
	if err := c.SASL.validate(); err != nil {
		return err
	}
	return c.TLS.Validate("kafka.tls")
}

func (s SASL) validate() error {
	switch strings.ToUpper(s.Mechanism) {
	case "":
		return nil
	case MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512:
	default:
		return fmt.Errorf("kafka.sasl.mechanism: must be %s, %s or %s, got %q", MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512, s.Mechanism)
	}
	if s.Username == "" {
		return errors.New("kafka.sasl.username: required with a SASL mechanism")
	}
	if s.Password == "" {
		return errors.New("kafka.sasl.password: required with a SASL mechanism")
	}
	return nil
}

// Redacted returns a copy fit for logging: the SASL password is masked.
func (c Config) Redacted() Config {
	c.Brokers = append([]string(nil), c.Brokers...)
	if c.SASL.Password != "" {
		c.SASL.Password = "***"
	}
	return c
}

func (c *Config) requiredAcks() kafkago.RequiredAcks {
	if strings.EqualFold(c.Acks, AcksAll) {
		return kafkago.RequireAll
	}
	return kafkago.RequireOne
}

// security is what every connection needs beyond an address.
type security struct {
	tls  *tls.Config
	sasl sasl.Mechanism
}

func (c *Config) security() (security, error) {
	var s security
	if c.TLS.Enable {
		tc, err := c.TLS.Build("kafka.tls")
		if err != nil {
			return s, err
		}
		s.tls = tc
	}
	switch strings.ToUpper(c.SASL.Mechanism) {
	case "":
	case MechanismPlain:
		s.sasl = plain.Mechanism{Username: c.SASL.Username, Password: c.SASL.Password}
	case MechanismSCRAMSHA256, MechanismSCRAMSHA512:
		algo := scram.SHA256
		if strings.EqualFold(c.SASL.Mechanism, MechanismSCRAMSHA512) {
			algo = scram.SHA512
		}
		m, err := scram.Mechanism(algo, c.SASL.Username, c.SASL.Password)
		if err != nil {
			return s, fmt.Errorf("kafka.sasl: %w", err)
		}
		s.sasl = m
	}
	return s, nil
}

// prepare returns a defaulted, validated copy of c and its security settings.
func (c Config) prepare() (Config, security, error) {
	c.Brokers = append([]string(nil), c.Brokers...)
	c.SetDefaults()
	if err := c.Validate(); err != nil {
		return c, security{}, err
	}
	sec, err := c.security()
	return c, sec, err
}

// transport returns a kafka-go Transport (connection pool for the Client and
// Writer APIs). topics, when set, limits the metadata it keeps refreshing.
func (c *Config) transport(sec security, topics ...string) *kafkago.Transport {
	d := &net.Dialer{Timeout: c.DialTimeout, KeepAlive: 30 * time.Second}
	return &kafkago.Transport{
		Dial:           d.DialContext,
		DialTimeout:    c.DialTimeout,
		MetadataTTL:    c.MetadataTTL,
		MetadataTopics: topics,
		ClientID:       c.ClientID,
		TLS:            sec.tls,
		SASL:           sec.sasl,
	}
}

// dialer returns a kafka-go Dialer (used by consumer groups and readers).
func (c *Config) dialer(sec security) *kafkago.Dialer {
	return &kafkago.Dialer{
		ClientID:      c.ClientID,
		Timeout:       c.DialTimeout,
		DualStack:     true,
		KeepAlive:     30 * time.Second,
		TLS:           sec.tls,
		SASLMechanism: sec.sasl,
	}
}
