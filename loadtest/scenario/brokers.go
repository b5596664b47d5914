package scenario

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/node"
)

// RabbitMQAddr is where the rabbitmq scenario expects a RabbitMQ server
// (the node's default broker.rabbitmq.url points there too).
const RabbitMQAddr = "127.0.0.1:5672"

// brokerSupported reports whether node.Config accepts broker.kind.
func brokerSupported(kind string) error {
	cfg := nodeConfig(kind)
	if kind == "kafka" {
		cfg.Broker.Kafka.Brokers = []string{"127.0.0.1:9092"} // required; only validated here
	}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil && strings.Contains(err.Error(), "broker.kind") {
		return err
	}
	return nil
}

func skipped(kind string, err error) *Report {
	return &Report{Skipped: fmt.Sprintf("broker.kind %s is not wired into the node (%v)", kind, err)}
}

// Kafka measures the gateway over Kafka (kfake, in this process) against
// direct HTTP and the memory broker.
func Kafka(ctx context.Context, o Options) (*Report, error) {
	if err := brokerSupported("kafka"); err != nil {
		return skipped("kafka", err), nil
	}
	return brokerScenario(ctx, o, "kafka", startKfake)
}

// startKfake starts an in-process Kafka (kfake, 127.0.0.1) with the demo
// topics and points the node's broker.kafka at it.
func startKfake(cfg *node.Config) (func(), error) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, demo.EchoDestination, demo.SleepDestination),
		kfake.SeedTopics(1, append(slices.Clone(rawKafkaRequests), rawKafkaReplies...)...))
	if err != nil {
		return nil, fmt.Errorf("scenario: start kfake: %w", err)
	}
	cfg.Broker.Kafka.Brokers = c.ListenAddrs()
	cfg.Broker.Kafka.AutoCreateTopics = true
	return c.Close, nil
}

// RabbitMQ measures the gateway over RabbitMQ (a server on RabbitMQAddr,
// guest/guest) against direct HTTP and the memory broker.
func RabbitMQ(ctx context.Context, o Options) (*Report, error) {
	if err := brokerSupported("rabbitmq"); err != nil {
		return skipped("rabbitmq", err), nil
	}
	c, err := net.DialTimeout("tcp", RabbitMQAddr, 2*time.Second)
	if err != nil {
		return &Report{Skipped: fmt.Sprintf("no RabbitMQ on %s (%v); .ci/run starts one", RabbitMQAddr, err)}, nil
	}
	_ = c.Close()
	return brokerScenario(ctx, o, "rabbitmq", nil)
}
