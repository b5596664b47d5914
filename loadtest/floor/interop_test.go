package floor_test

import (
	"context"
	"log/slog"
	"net/http"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/kafka"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/brokers/rabbitmq/rabbitmqtest"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/loadtest/floor"
)

// The floors speak syncgate's wire contract: the naive echo answers
// syncgate's gateway, and syncgate's demo service answers the naive
// gateway, on both brokers.

func discard() *slog.Logger { return slog.New(slog.DiscardHandler) }

func kafkaConfig(addrs []string) kafka.Config {
	return kafka.Config{Brokers: addrs, HeartbeatInterval: 200 * time.Millisecond, SessionTimeout: 6 * time.Second,
		JoinGroupBackoff: 200 * time.Millisecond, WriteTimeout: 30 * time.Second}
}

// startNode runs syncgate's node with broker b, routing POST /echo to
// dest, and returns its base URL once it is ready.
func startNode(t *testing.T, b node.BrokerConfig, replyTo, dest string) string {
	t.Helper()
	var cfg node.Config
	cfg.Addr, cfg.Node, cfg.ReplyTo = "127.0.0.1:0", "floor-test", replyTo
	cfg.Broker = b
	cfg.Broker.PublishTimeout = 30 * time.Second
	cfg.Shutdown.ReadinessDelay = 0
	cfg.Routes = []node.RouteConfig{{Name: "echo", Method: http.MethodPost, Path: "/echo", Destination: dest, Mode: "sync", Timeout: 30 * time.Second}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(cfg, discard())
	if err != nil {
		t.Fatal(err)
	}
	ready := make(chan string, 1)
	startFloor(t, "syncgate node", ready, func(ctx context.Context) error {
		go func() {
			select {
			case <-n.Ready():
				ready <- ""
			case <-ctx.Done():
			}
		}()
		return n.Run(ctx)
	})
	return "http://" + n.Addr()
}

// serveDemoEcho runs syncgate's demo echo handler on source, through the
// responder SDK on its own connection, until the test ends.
func serveDemoEcho(t *testing.T, b interface {
	brokers.Publisher
	brokers.Subscriber
}, source string) {
	t.Helper()
	svc := &responder.Service{Subscriber: b, Publisher: b, Logger: discard()}
	ready := make(chan string, 1)
	startFloor(t, "demo service", ready, func(ctx context.Context) error {
		err := svc.Serve(ctx, source, demo.Echo, brokers.WithConcurrency(64), brokers.WithReady(func() { ready <- "" }))
		if ctx.Err() != nil {
			return nil
		}
		return err
	})
}

func TestSyncgateGatewayWithNaiveEchoKafka(t *testing.T) {
	addrs := newKfake(t, "naive.requests")
	startEcho(t, floor.EchoConfig{Broker: floor.Broker{Kind: floor.Kafka, KafkaBrokers: addrs, Topic: "naive.requests"}})
	var b node.BrokerConfig
	b.Kind, b.Kafka = "kafka", kafkaConfig(addrs)
	base := startNode(t, b, "syncgate.reply.floor", "naive.requests")
	echoAll(t, base+"/echo", 20)
}

func TestNaiveGatewayWithDemoServiceKafka(t *testing.T) {
	addrs := newKfake(t, "naive.requests")
	kcfg := kafkaConfig(addrs)
	kcfg.SetDefaults()
	kcfg.Logger = discard()
	svc, err := kafka.New(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	serveDemoEcho(t, svc, "naive.requests")
	base := startGateway(t, floor.GatewayConfig{Broker: floor.Broker{Kind: floor.Kafka, KafkaBrokers: addrs, Topic: "naive.requests"}})
	echoAll(t, base+"/echo", 20)
}

// rabbitConfig is a syncgate RabbitMQ configuration with names unique to
// the test, deleted when it ends.
func rabbitConfig(t *testing.T, url string) rabbitmq.Config {
	t.Helper()
	id := rabbitmqtest.Unique("naive.sg")
	cfg := rabbitmq.Config{URL: url, ConnectionName: id, DeadLetterExchange: id + ".dlx", DeadLetterQueue: id + ".dlq"}
	rabbitmqtest.DeleteQueueAtEnd(t, cfg.DeadLetterQueue)
	rabbitmqtest.DeleteExchangeAtEnd(t, cfg.DeadLetterExchange)
	return cfg
}

func TestSyncgateGatewayWithNaiveEchoRabbitMQ(t *testing.T) {
	url := testenv.RequireRabbitMQ(t)
	rabbitmqtest.Shared(t)
	q, replyTo := rabbitmqtest.Unique("naive.test"), rabbitmqtest.Unique("naive.sg.reply")
	rabbitmqtest.DeleteQueueAtEnd(t, q)
	rabbitmqtest.DeleteQueueAtEnd(t, replyTo)
	startEcho(t, floor.EchoConfig{Broker: floor.Broker{Kind: floor.RabbitMQ, RabbitMQURL: url, Queue: q}})
	var b node.BrokerConfig
	b.Kind, b.RabbitMQ = "rabbitmq", rabbitConfig(t, url)
	base := startNode(t, b, replyTo, q)
	echoAll(t, base+"/echo", 20)
}

func TestNaiveGatewayWithDemoServiceRabbitMQ(t *testing.T) {
	url := testenv.RequireRabbitMQ(t)
	rabbitmqtest.Shared(t)
	q := rabbitmqtest.Unique("naive.test")
	rabbitmqtest.DeleteQueueAtEnd(t, q)
	cfg := rabbitConfig(t, url)
	cfg.SetDefaults()
	cfg.Logger = discard()
	svc, err := rabbitmq.Dial(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = svc.Close() })
	serveDemoEcho(t, svc, q)
	base := startGateway(t, floor.GatewayConfig{Broker: floor.Broker{Kind: floor.RabbitMQ, RabbitMQURL: url, Queue: q}})
	echoAll(t, base+"/echo", 20)
}
