package rabbitmq

import (
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
)

// Config configures a Client. The top-level syncgate configuration embeds it
// under broker.rabbitmq. Zero values are replaced by SetDefaults.
type Config struct {
	// Logger receives the backend's log lines, under component rabbitmq
	// (default slog.Default()).
	Logger *slog.Logger `yaml:"-"`
	// URL of the broker (default amqp://guest:guest@127.0.0.1:5672/).
	URL string `yaml:"url"`
	// ConnectionName is advertised as the connection_name client property,
	// suffixed with the connection's role, so `rabbitmqctl list_connections
	// name client_properties` tells the gateway's connections apart
	// (default "syncgate").
	ConnectionName string `yaml:"connection_name"`
	// Exchange is the durable direct exchange requests and replies are
	// published to, with the destination as routing key; every queue a
	// Subscribe declares is bound to it with its own name. Empty (default)
	// uses the default exchange, where the routing key is the queue name.
	Exchange string `yaml:"exchange"`
	// Prefetch is the QoS prefetch count of each subscription: how many
	// unacknowledged deliveries the broker keeps in flight to it (default 64;
	// raised to the subscription's concurrency when lower).
	Prefetch int `yaml:"prefetch"`
	// QueueType is the x-queue-type of the work queues services consume:
	// "quorum" (default: replicated, every message on disk, the broker
	// counts deliveries) or "classic" (one node; with TransientRequests
	// requests stay in memory: lower latency, lost if the broker restarts).
	// Reply queues are always classic. A queue keeps the type it was
	// declared with: changing it means deleting the queue first (the broker
	// refuses a declaration with another type).
	QueueType string `yaml:"queue_type"`
	// MaxDeliveries is how many times a work-queue message is delivered
	// before it is dead-lettered (default 5; 1 means no retry). It becomes
	// the quorum queue's x-delivery-limit (MaxDeliveries-1 redeliveries); on
	// a classic queue the Client counts attempts itself (see the package
	// doc).
	MaxDeliveries int `yaml:"max_deliveries"`
	// DeadLetterExchange is the durable fanout exchange every queue dead-letters
	// to (default "syncgate.dlx").
	DeadLetterExchange string `yaml:"dead_letter_exchange"`
	// DeadLetterQueue is the durable queue bound to DeadLetterExchange that
	// keeps dead-lettered messages for inspection (default "syncgate.dlq").
	DeadLetterQueue string `yaml:"dead_letter_queue"`
	// ReplyQueueExpiry is the x-expires of a gateway node's reply queue: how
	// long it survives without a consumer, so replies published while the
	// node is disconnected wait for it (default 5m, at least 1s).
	ReplyQueueExpiry time.Duration `yaml:"reply_queue_expiry"`
	// DirectReplyTo makes the reply inbox RabbitMQ's direct reply-to
	// (amq.rabbitmq.reply-to) instead of a reply queue. Faster, but
	// at-most-once: a reply in flight while the connection drops is lost and
	// its request ends at its deadline (see the package documentation).
	DirectReplyTo bool `yaml:"direct_reply_to"`
	// TransientReplies publishes replies (messages carrying the envelope
	// status header, as responder.Service sends them) with delivery mode 1
	// instead of persistent. It matters on the Client that publishes replies,
	// the service's. A reply still waits in the reply queue while its node is
	// disconnected (the queue is not exclusive and outlives the connection
	// until its x-expires; persistence is only about broker restarts), but
	// one waiting there when the broker restarts is lost and its request ends
	// at its deadline. In exchange the broker does not write replies to
	// disk: less broker CPU per round trip and a confirm that does not wait
	// for an fsync (see the package doc). Requests stay persistent. Default
	// false: replies survive a broker restart.
	TransientReplies bool `yaml:"transient_replies"`
	// TransientRequests publishes requests (every message that is not a
	// reply) with delivery mode 1. It matters on the Client that publishes
	// requests, the gateway's, and only for classic work queues: a quorum
	// queue writes every message to disk whatever its delivery mode. A
	// transient request waiting in a classic queue when the broker restarts
	// is lost and its request ends at its deadline (202 or 504); in exchange
	// the broker neither writes it to disk nor waits for an fsync before
	// confirming it. Default false.
	TransientRequests bool `yaml:"transient_requests"`
	// ConfirmTimeout bounds the wait for a publisher confirm (default 5s).
	ConfirmTimeout time.Duration `yaml:"confirm_timeout"`
	// ReconnectInterval is the pause before each reconnection attempt; the
	// client adds up to 500ms of jitter (default 500ms).
	ReconnectInterval time.Duration `yaml:"reconnect_interval"`
	// ReconnectAttempts bounds the reconnection attempts after a connection
	// loss; 0 (default) retries until Close.
	ReconnectAttempts int `yaml:"reconnect_attempts"`
	// Heartbeat is the AMQP heartbeat interval that detects a dead peer
	// (default 10s).
	Heartbeat time.Duration `yaml:"heartbeat"`
	// DialTimeout bounds one TCP connect plus handshake (default 5s).
	DialTimeout time.Duration `yaml:"dial_timeout"`
}

// Defaults.
const (
	DefaultURL                = "amqp://guest:guest@127.0.0.1:5672/"
	DefaultConnectionName     = "syncgate"
	DefaultQueueType          = QueueTypeQuorum
	DefaultPrefetch           = 64
	DefaultMaxDeliveries      = 5
	DefaultDeadLetterExchange = "syncgate.dlx"
	DefaultDeadLetterQueue    = "syncgate.dlq"
	DefaultReplyQueueExpiry   = 5 * time.Minute
	DefaultConfirmTimeout     = 5 * time.Second
	DefaultReconnectInterval  = 500 * time.Millisecond
	DefaultHeartbeat          = 10 * time.Second
	DefaultDialTimeout        = 5 * time.Second
)

// Work queue types (Config.QueueType).
const (
	QueueTypeQuorum  = amqp.QueueTypeQuorum
	QueueTypeClassic = amqp.QueueTypeClassic
)

// SetDefaults replaces zero values with the defaults.
func (c *Config) SetDefaults() {
	brokers.SetDefault(&c.URL, DefaultURL)
	brokers.SetDefault(&c.ConnectionName, DefaultConnectionName)
	brokers.SetDefault(&c.QueueType, DefaultQueueType)
	brokers.SetDefault(&c.Prefetch, DefaultPrefetch)
	brokers.SetDefault(&c.MaxDeliveries, DefaultMaxDeliveries)
	brokers.SetDefault(&c.DeadLetterExchange, DefaultDeadLetterExchange)
	brokers.SetDefault(&c.DeadLetterQueue, DefaultDeadLetterQueue)
	brokers.SetDefault(&c.ReplyQueueExpiry, DefaultReplyQueueExpiry)
	brokers.SetDefault(&c.ConfirmTimeout, DefaultConfirmTimeout)
	brokers.SetDefault(&c.ReconnectInterval, DefaultReconnectInterval)
	brokers.SetDefault(&c.Heartbeat, DefaultHeartbeat)
	brokers.SetDefault(&c.DialTimeout, DefaultDialTimeout)
}

// Validate reports every invalid field, each message naming it.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("rabbitmq.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if _, err := amqp.ParseURI(c.URL); err != nil {
		bad("url", "%v", err)
	}
	if c.ConnectionName == "" {
		bad("connection_name", "must not be empty")
	}
	if strings.HasPrefix(c.Exchange, "amq.") {
		bad("exchange", "%q: names starting with amq. are reserved by RabbitMQ", c.Exchange)
	}
	if c.QueueType != QueueTypeQuorum && c.QueueType != QueueTypeClassic {
		bad("queue_type", "%q must be %s or %s", c.QueueType, QueueTypeQuorum, QueueTypeClassic)
	}
	if c.Prefetch < 1 || c.Prefetch > math.MaxUint16 {
		bad("prefetch", "%d is outside 1..%d", c.Prefetch, math.MaxUint16)
	}
	if c.MaxDeliveries < 1 {
		bad("max_deliveries", "%d must be at least 1", c.MaxDeliveries)
	}
	if c.DeadLetterExchange == "" || strings.HasPrefix(c.DeadLetterExchange, "amq.") {
		bad("dead_letter_exchange", "%q must be a non-empty name outside amq.*", c.DeadLetterExchange)
	}
	if c.DeadLetterQueue == "" || strings.HasPrefix(c.DeadLetterQueue, "amq.") {
		bad("dead_letter_queue", "%q must be a non-empty name outside amq.*", c.DeadLetterQueue)
	}
	if c.ReplyQueueExpiry < time.Second {
		bad("reply_queue_expiry", "%s must be at least 1s", c.ReplyQueueExpiry)
	}
	if c.ConfirmTimeout <= 0 {
		bad("confirm_timeout", "%s must be positive", c.ConfirmTimeout)
	}
	if c.ReconnectInterval <= 0 {
		bad("reconnect_interval", "%s must be positive", c.ReconnectInterval)
	}
	if c.ReconnectAttempts < 0 {
		bad("reconnect_attempts", "%d must not be negative (0 retries until Close)", c.ReconnectAttempts)
	}
	if c.Heartbeat < 0 {
		bad("heartbeat", "%s must not be negative", c.Heartbeat)
	}
	if c.DialTimeout <= 0 {
		bad("dial_timeout", "%s must be positive", c.DialTimeout)
	}
	return errors.Join(errs...)
}

// amqpConfig is the amqp091-go configuration of one connection. Each
// connection gets its own Recovery: DialConfig fills its defaults in place.
func (c Config) amqpConfig(role string, mode amqp.TopologyRecoveryMode, hook *recoveryHook) amqp.Config {
	props := amqp.NewConnectionProperties()
	props["connection_name"] = c.ConnectionName + " " + role
	attempts := c.ReconnectAttempts
	if attempts == 0 {
		attempts = math.MaxInt32
	}
	return amqp.Config{
		Heartbeat:  c.Heartbeat,
		Locale:     "en_US",
		Properties: props,
		Dial:       hook.sock.dial(c.DialTimeout),
		Recovery: &amqp.Recovery{
			ReconnectionConfig: &amqp.ReconnectionConfig{
				MaxRetryCount: attempts,
				RetryInterval: c.ReconnectInterval,
			},
			ConnectionRecovery:   hook,
			TopologyRecoveryMode: mode,
		},
	}
}
