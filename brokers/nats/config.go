package nats

import (
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"time"

	natsgo "github.com/nats-io/nats.go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/internal/clienttls"
)

// Modes accepted by Config.Mode.
const (
	// ModeCore publishes and subscribes with core NATS only: no
	// persistence, at most once (see the package doc).
	ModeCore = "core"
	// ModeJetStream keeps requests in JetStream work-queue streams,
	// consumed by durable pull consumers with explicit acks; replies stay
	// core NATS.
	ModeJetStream = "jetstream"
)

// Storage kinds accepted by Config.Storage.
const (
	StorageFile   = "file"
	StorageMemory = "memory"
)

// Config configures a Client. The top-level syncgate configuration embeds it
// under broker.nats. Zero values are replaced by SetDefaults.
type Config struct {
	// Logger receives the backend's log lines, under component nats
	// (default slog.Default()).
	Logger *slog.Logger `yaml:"-"`
	// URL of the server, or several separated by commas (a cluster's seed
	// servers; the client learns the others from the server) (default
	// nats://127.0.0.1:4222).
	URL string `yaml:"url"`
	// Name is the connection name the server shows (`nats server report
	// connections`, the monitoring port's /connz) (default "syncgate").
	Name string `yaml:"name"`
	// User and Password authenticate with a user name and password; Token
	// with a token; CredentialsFile with a decentralised-auth .creds file
	// (JWT and NKey seed). At most one of the three; a user and password
	// in URL work too.
	User            string `yaml:"user"`
	Password        string `yaml:"password"`
	Token           string `yaml:"token"`
	CredentialsFile string `yaml:"credentials_file"`
	// TLS encrypts the connection (the same block as Kafka's and Redis's).
	TLS TLS `yaml:"tls"`

	// Mode is "core" (default: core NATS publish and queue subscriptions,
	// at most once) or "jetstream" (requests in work-queue streams,
	// redelivered until acknowledged). See the package doc.
	Mode string `yaml:"mode"`
	// ReplyPrefix: in jetstream mode, subjects starting with it are
	// published and consumed with core NATS, and every other subject goes
	// through a stream. Gateway nodes' reply subjects (reply_to, default
	// syncgate.reply.<node>) must start with it (default "syncgate.reply.").
	ReplyPrefix string `yaml:"reply_prefix"`
	// StreamPrefix starts the name of every stream the Client creates
	// (default "SYNCGATE_"); see Config.StreamName.
	StreamPrefix string `yaml:"stream_prefix"`
	// Storage is where the streams keep their messages: "file" (default:
	// survives a server restart) or "memory" (faster; lost on a restart).
	// A stream keeps the storage it was created with.
	Storage string `yaml:"storage"`
	// Replicas of each stream the Client creates, in a JetStream cluster
	// (default 1; at most 5).
	Replicas int `yaml:"replicas"`
	// MaxDeliveries is how many times a message whose handler keeps
	// failing is handed to it before it is dead-lettered (default 5; 1:
	// no retry). In core mode the subscription retries in place.
	MaxDeliveries int `yaml:"max_deliveries"`
	// RetryDelay is the pause before the second delivery of a message
	// whose handler failed; it doubles for each further one up to
	// MaxRetryDelay (defaults 100ms and 5s). In jetstream mode it is the
	// nak's delay.
	RetryDelay    time.Duration `yaml:"retry_delay"`
	MaxRetryDelay time.Duration `yaml:"max_retry_delay"`
	// AckWait: a JetStream delivery not acknowledged within it is
	// delivered again (default 5s). A subscription keeps what it took
	// alive with in-progress acks every AckWait/2, from the moment it took
	// it until it settles it, however long the handler runs: AckWait only
	// brings back what no subscription holds, a delivery lost in transit
	// when the server restarted or its consumer's process vanished. Keep
	// it well under the routes' timeouts (see the package doc).
	AckWait time.Duration `yaml:"ack_wait"`
	// Prefetch is how many messages a jetstream subscription pulls at a
	// time (default 0: its concurrency; raised to it when lower); they
	// wait for a free handler in the subscription, kept alive.
	Prefetch int `yaml:"prefetch"`
	// DeadLetter is the subject messages given up on are published to,
	// with the header x-syncgate-dead-letter-reason (default
	// "syncgate.dead-letter"). In jetstream mode the Client keeps them in
	// the stream <stream_prefix>DEAD_LETTER for DeadLetterMaxAge; in core
	// mode they are a core publish (kept only if a stream of your own
	// captures the subject).
	DeadLetter string `yaml:"dead_letter"`
	// DeadLetterMaxAge is how long the dead-letter stream keeps a message
	// (default 168h, a week).
	DeadLetterMaxAge time.Duration `yaml:"dead_letter_max_age"`
	// BodyBucket is the JetStream object store that carries the bodies of
	// messages larger than the server's max_payload (a claim check: the
	// message carries a reference; see the package doc) (default
	// "syncgate_bodies"). Needs JetStream, also in core mode; without it
	// such messages fail with ErrMessageTooLarge.
	BodyBucket string `yaml:"body_bucket"`
	// BodyTTL is how long an object in BodyBucket lives; jetstream
	// subscriptions delete it once the message is acknowledged, core
	// subscriptions leave it to the TTL (default 1h).
	BodyTTL time.Duration `yaml:"body_ttl"`

	// ConfirmTimeout bounds the wait for a JetStream publish ack, and in
	// jetstream mode for the gateway's answer to a reply, when the
	// caller's context has no earlier deadline (default 5s).
	ConfirmTimeout time.Duration `yaml:"confirm_timeout"`
	// DialTimeout bounds one connection attempt (default 5s).
	DialTimeout time.Duration `yaml:"dial_timeout"`
	// ReconnectInterval is the pause between reconnection attempts to one
	// server; the client adds up to 100ms of jitter (default 500ms).
	ReconnectInterval time.Duration `yaml:"reconnect_interval"`
	// ReconnectAttempts bounds the reconnection attempts per server after
	// a connection loss; 0 (default) retries until Close.
	ReconnectAttempts int `yaml:"reconnect_attempts"`
	// PingInterval is how often the client pings an idle server; two
	// unanswered pings mark the connection dead (default 10s; the library's
	// default of 2m would leave a vanished server unnoticed for minutes).
	PingInterval time.Duration `yaml:"ping_interval"`
}

// TLS configures the encrypted connection (see internal/clienttls).
type TLS = clienttls.Config

// Defaults.
const (
	DefaultURL               = natsgo.DefaultURL
	DefaultName              = "syncgate"
	DefaultMode              = ModeCore
	DefaultReplyPrefix       = "syncgate.reply."
	DefaultStreamPrefix      = "SYNCGATE_"
	DefaultStorage           = StorageFile
	DefaultReplicas          = 1
	DefaultMaxDeliveries     = 5
	DefaultRetryDelay        = 100 * time.Millisecond
	DefaultMaxRetryDelay     = 5 * time.Second
	DefaultAckWait           = 5 * time.Second
	DefaultDeadLetter        = "syncgate.dead-letter"
	DefaultDeadLetterMaxAge  = 7 * 24 * time.Hour
	DefaultBodyBucket        = "syncgate_bodies"
	DefaultBodyTTL           = time.Hour
	DefaultConfirmTimeout    = 5 * time.Second
	DefaultDialTimeout       = 5 * time.Second
	DefaultReconnectInterval = 500 * time.Millisecond
	DefaultPingInterval      = 10 * time.Second
)

// DefaultGroup is the group of a subscription without WithGroup: the core
// queue group, or the durable consumer's name.
const DefaultGroup = "syncgate"

// SetDefaults replaces zero values with the defaults.
func (c *Config) SetDefaults() {
	brokers.SetDefault(&c.URL, DefaultURL)
	brokers.SetDefault(&c.Name, DefaultName)
	brokers.SetDefault(&c.Mode, DefaultMode)
	brokers.SetDefault(&c.ReplyPrefix, DefaultReplyPrefix)
	brokers.SetDefault(&c.StreamPrefix, DefaultStreamPrefix)
	brokers.SetDefault(&c.Storage, DefaultStorage)
	brokers.SetDefault(&c.Replicas, DefaultReplicas)
	brokers.SetDefault(&c.MaxDeliveries, DefaultMaxDeliveries)
	brokers.SetDefault(&c.RetryDelay, DefaultRetryDelay)
	brokers.SetDefault(&c.MaxRetryDelay, DefaultMaxRetryDelay)
	brokers.SetDefault(&c.AckWait, DefaultAckWait)
	brokers.SetDefault(&c.DeadLetter, DefaultDeadLetter)
	brokers.SetDefault(&c.DeadLetterMaxAge, DefaultDeadLetterMaxAge)
	brokers.SetDefault(&c.BodyBucket, DefaultBodyBucket)
	brokers.SetDefault(&c.BodyTTL, DefaultBodyTTL)
	brokers.SetDefault(&c.ConfirmTimeout, DefaultConfirmTimeout)
	brokers.SetDefault(&c.DialTimeout, DefaultDialTimeout)
	brokers.SetDefault(&c.ReconnectInterval, DefaultReconnectInterval)
	brokers.SetDefault(&c.PingInterval, DefaultPingInterval)
}

// Validate reports every invalid field, each message naming it. Call
// SetDefaults first.
func (c Config) Validate() error {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("nats.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	for u := range strings.SplitSeq(c.URL, ",") {
		if err := checkURL(strings.TrimSpace(u)); err != nil {
			bad("url", "%v", err)
		}
	}
	if c.Name == "" {
		bad("name", "must not be empty")
	}
	auth := 0
	for _, set := range []bool{c.User != "" || c.Password != "", c.Token != "", c.CredentialsFile != ""} {
		if set {
			auth++
		}
	}
	if auth > 1 {
		bad("user", "user/password, token and credentials_file exclude each other; set one")
	}
	if c.Password != "" && c.User == "" {
		bad("user", "required with a password")
	}
	switch c.Mode {
	case ModeCore, ModeJetStream:
	default:
		bad("mode", "%q must be %s or %s", c.Mode, ModeCore, ModeJetStream)
	}
	if err := checkSubject(c.ReplyPrefix + "x"); err != nil || !strings.HasSuffix(c.ReplyPrefix, ".") {
		bad("reply_prefix", "%q must be subject tokens ending in a dot, without wildcards or spaces", c.ReplyPrefix)
	}
	if c.StreamPrefix == "" || !validName(c.StreamPrefix) {
		bad("stream_prefix", "%q may hold only letters, digits, - and _", c.StreamPrefix)
	}
	if c.Storage != StorageFile && c.Storage != StorageMemory {
		bad("storage", "%q must be %s or %s", c.Storage, StorageFile, StorageMemory)
	}
	if c.Replicas < 1 || c.Replicas > 5 {
		bad("replicas", "%d is outside 1..5", c.Replicas)
	}
	if c.MaxDeliveries < 1 {
		bad("max_deliveries", "%d must be at least 1", c.MaxDeliveries)
	}
	if c.Prefetch < 0 {
		bad("prefetch", "%d must not be negative (0: the subscription's concurrency)", c.Prefetch)
	}
	if err := checkSubject(c.DeadLetter); err != nil {
		bad("dead_letter", "%v", err)
	} else if strings.HasPrefix(c.DeadLetter, c.ReplyPrefix) {
		bad("dead_letter", "%q must not start with reply_prefix %q", c.DeadLetter, c.ReplyPrefix)
	}
	if c.BodyBucket == "" || !validName(c.BodyBucket) {
		bad("body_bucket", "%q may hold only letters, digits, - and _", c.BodyBucket)
	}
	for _, d := range []struct {
		name string
		v    time.Duration
	}{
		{"retry_delay", c.RetryDelay}, {"max_retry_delay", c.MaxRetryDelay},
		{"ack_wait", c.AckWait}, {"dead_letter_max_age", c.DeadLetterMaxAge},
		{"body_ttl", c.BodyTTL}, {"confirm_timeout", c.ConfirmTimeout},
		{"dial_timeout", c.DialTimeout}, {"reconnect_interval", c.ReconnectInterval},
		{"ping_interval", c.PingInterval},
	} {
		if d.v <= 0 {
			bad(d.name, "%s must be positive", d.v)
		}
	}
	if c.MaxRetryDelay < c.RetryDelay {
		bad("max_retry_delay", "%s is below retry_delay %s", c.MaxRetryDelay, c.RetryDelay)
	}
	if c.AckWait > 0 && c.AckWait < time.Second {
		bad("ack_wait", "%s must be at least 1s", c.AckWait)
	}
	if c.ReconnectAttempts < 0 {
		bad("reconnect_attempts", "%d must not be negative (0 retries until Close)", c.ReconnectAttempts)
	}
	if err := c.TLS.Validate("nats.tls"); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// Redacted returns a copy fit for logging: password, token and the
// password of every URL masked.
func (c Config) Redacted() Config {
	if c.Password != "" {
		c.Password = "***"
	}
	if c.Token != "" {
		c.Token = "***"
	}
	c.URL = redactURLs(c.URL)
	return c
}

// StreamName is the name of the stream that holds subject in jetstream
// mode: StreamPrefix, then the subject with its dots (and any character a
// stream name cannot hold) turned into underscores; a subject that had
// underscores or such characters gets a hash of itself appended, so two
// subjects never share a stream.
func (c Config) StreamName(subject string) string {
	var b strings.Builder
	b.WriteString(c.StreamPrefix)
	lossy := false
	for _, r := range subject {
		switch {
		case r == '.':
			b.WriteByte('_')
		case r == '-', r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
			b.WriteRune(r)
		default:
			b.WriteByte('_')
			lossy = true
		}
	}
	if lossy {
		fmt.Fprintf(&b, "_%08x", fnv32(subject))
	}
	return b.String()
}

// deadLetterStream is the name of the stream that keeps dead letters.
func (c Config) deadLetterStream() string { return c.StreamPrefix + "DEAD_LETTER" }

// consumerName is the durable consumer of group: the group with every
// character a consumer name cannot hold turned into an underscore (and a
// hash appended when that happened).
func consumerName(group string) string {
	if validName(group) {
		return group
	}
	var b strings.Builder
	for _, r := range group {
		if r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' {
			b.WriteRune(r)
		} else {
			b.WriteByte('_')
		}
	}
	fmt.Fprintf(&b, "_%08x", fnv32(group))
	return b.String()
}

func fnv32(s string) uint32 {
	h := uint32(2166136261)
	for i := 0; i < len(s); i++ {
		h ^= uint32(s[i])
		h *= 16777619
	}
	return h
}

// validName reports whether s is a safe stream, consumer or bucket name.
func validName(s string) bool {
	for _, r := range s {
		if r != '-' && r != '_' && (r < 'a' || r > 'z') && (r < 'A' || r > 'Z') && (r < '0' || r > '9') {
			return false
		}
	}
	return s != ""
}

// checkSubject accepts a literal subject: dot-separated non-empty tokens
// without wildcards, spaces or control characters.
func checkSubject(s string) error {
	if s == "" {
		return errors.New("empty subject")
	}
	for tok := range strings.SplitSeq(s, ".") {
		if tok == "" {
			return fmt.Errorf("subject %q has an empty token", s)
		}
		if tok == "*" || tok == ">" {
			return fmt.Errorf("subject %q: wildcards are not supported", s)
		}
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] == 0x7f {
			return fmt.Errorf("subject %q holds a space or control character", s)
		}
	}
	return nil
}

func checkURL(raw string) error {
	if raw == "" {
		return errors.New("empty URL")
	}
	if !strings.Contains(raw, "://") {
		raw = "nats://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return err
	}
	switch u.Scheme {
	case "nats", "tls", "ws", "wss":
	default:
		return fmt.Errorf("%s: scheme must be nats, tls, ws or wss", u.Redacted())
	}
	if u.Host == "" {
		return fmt.Errorf("%s: no host", u.Redacted())
	}
	return nil
}

// redactURLs masks the passwords of a comma-separated URL list.
func redactURLs(list string) string {
	parts := strings.Split(list, ",")
	for i, p := range parts {
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			if _, ok := u.User.Password(); ok {
				parts[i] = u.Redacted()
			}
		}
	}
	return strings.Join(parts, ",")
}

// options are the nats.go options of the Client's connection.
func (c Config) options(h connHandlers) ([]natsgo.Option, error) {
	attempts := c.ReconnectAttempts
	if attempts == 0 {
		attempts = -1
	}
	opts := []natsgo.Option{
		natsgo.Name(c.Name),
		natsgo.Timeout(c.DialTimeout),
		natsgo.ReconnectWait(c.ReconnectInterval),
		natsgo.ReconnectJitter(100*time.Millisecond, 100*time.Millisecond),
		natsgo.MaxReconnects(attempts),
		natsgo.PingInterval(c.PingInterval),
		natsgo.MaxPingsOutstanding(2),
		// Publishing while disconnected fails at once instead of filling
		// a buffer that is lost if the reconnection fails: the gateway
		// answers 503 (or queues in its outbox) and the caller knows.
		natsgo.ReconnectBufSize(-1),
		natsgo.DisconnectErrHandler(h.disconnected),
		natsgo.ReconnectHandler(h.reconnected),
		natsgo.ClosedHandler(h.closed),
		natsgo.ErrorHandler(h.asyncError),
	}
	switch {
	case c.User != "":
		opts = append(opts, natsgo.UserInfo(c.User, c.Password))
	case c.Token != "":
		opts = append(opts, natsgo.Token(c.Token))
	case c.CredentialsFile != "":
		opts = append(opts, natsgo.UserCredentials(c.CredentialsFile))
	}
	if c.TLS.Enable {
		tc, err := c.TLS.Build("nats.tls")
		if err != nil {
			return nil, err
		}
		opts = append(opts, natsgo.Secure(tc))
	}
	return opts, nil
}
