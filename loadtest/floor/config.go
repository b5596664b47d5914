package floor

import (
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// Broker kinds.
const (
	Kafka    = "kafka"
	RabbitMQ = "rabbitmq"
)

// Broker says where requests go: a Kafka topic or a RabbitMQ queue.
type Broker struct {
	Kind         string   // Kafka or RabbitMQ
	KafkaBrokers []string // Kafka bootstrap brokers
	Topic        string   // Kafka: the request topic
	RabbitMQURL  string   // RabbitMQ: the server's URL
	Queue        string   // RabbitMQ: the request queue
}

func (b Broker) validate() error {
	switch b.Kind {
	case Kafka:
		if len(b.KafkaBrokers) == 0 || b.KafkaBrokers[0] == "" {
			return errors.New("floor: KafkaBrokers is empty")
		}
		if b.Topic == "" {
			return errors.New("floor: Topic is empty")
		}
	case RabbitMQ:
		if b.RabbitMQURL == "" {
			return errors.New("floor: RabbitMQURL is empty")
		}
		if b.Queue == "" {
			return errors.New("floor: Queue is empty")
		}
	default:
		return fmt.Errorf("floor: broker %q is not %s or %s", b.Kind, Kafka, RabbitMQ)
	}
	return nil
}

// GatewayConfig configures Gateway.
type GatewayConfig struct {
	Broker
	Addr    string        // listen address (default 127.0.0.1:0)
	Timeout time.Duration // how long a request waits for its reply (default 10s)
	// Persistent publishes RabbitMQ requests persistent (delivery mode 2);
	// by default they are transient, as in the RabbitMQ RPC tutorial.
	Persistent bool
	Logger     *slog.Logger
	// Listening, when set, is called with the listen address once the
	// server accepts connections.
	Listening func(addr string)
}

func (c *GatewayConfig) setDefaults() {
	if c.Addr == "" {
		c.Addr = "127.0.0.1:0"
	}
	if c.Timeout == 0 {
		c.Timeout = 10 * time.Second
	}
	c.Logger = logger(c.Logger)
}

// Validate reports the first field that is unusable.
func (c GatewayConfig) Validate() error {
	if c.Timeout < 0 {
		return fmt.Errorf("floor: Timeout %v is negative", c.Timeout)
	}
	return c.Broker.validate()
}

// EchoConfig configures Echo.
type EchoConfig struct {
	Broker
	Group    string // Kafka: the consumer group (default naive-echo)
	Prefetch int    // RabbitMQ: unacked deliveries at once (default 256)
	// QueueType is the x-queue-type the service declares its RabbitMQ
	// queue with when it is missing: "classic" (default, as the RPC
	// tutorial) or "quorum" (replicated, on disk: syncgate's default, for
	// a like-for-like comparison).
	QueueType string
	Logger    *slog.Logger
	// Ready, when set, is called once the service consumes: the Kafka
	// group is joined, or the RabbitMQ consumer registered.
	Ready func()
}

func (c *EchoConfig) setDefaults() {
	if c.Group == "" {
		c.Group = "naive-echo"
	}
	if c.Prefetch == 0 {
		c.Prefetch = 256
	}
	if c.QueueType == "" {
		c.QueueType = "classic"
	}
	c.Logger = logger(c.Logger)
}

// Validate reports the first field that is unusable.
func (c EchoConfig) Validate() error {
	if c.Prefetch < 0 {
		return fmt.Errorf("floor: Prefetch %d is negative", c.Prefetch)
	}
	if c.QueueType != "" && c.QueueType != "classic" && c.QueueType != "quorum" {
		return fmt.Errorf("floor: QueueType %q is not classic or quorum", c.QueueType)
	}
	return c.Broker.validate()
}

// EchoServerConfig configures EchoServer.
type EchoServerConfig struct {
	Addr      string            // listen address (default 127.0.0.1:0)
	Listening func(addr string) // as GatewayConfig.Listening
}

func logger(l *slog.Logger) *slog.Logger {
	if l == nil {
		l = slog.New(slog.DiscardHandler)
	}
	return l.With("component", "floor")
}
