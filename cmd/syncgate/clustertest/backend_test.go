package clustertest

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/kafka"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/brokers/rabbitmq/rabbitmqtest"
	"github.com/syncgate/syncgate/internal/testenv"
)

// backend is the broker a cluster runs on: kfake in the test process, or
// the machine's shared RabbitMQ server.
type backend string

const (
	onKafka    backend = "kafka"
	onRabbitMQ backend = "rabbitmq"
)

// onEachBackend runs scenario as one subtest per networked backend. The
// RabbitMQ subtest holds the shared server (rabbitmqtest.Shared) from its
// start, and is skipped when the server cannot be reached (failed under
// CI=true).
func onEachBackend(t *testing.T, scenario func(t *testing.T, on backend, rk redisKind)) {
	for _, on := range []backend{onKafka, onRabbitMQ} {
		t.Run(string(on), func(t *testing.T) {
			if on == onRabbitMQ {
				useRabbitMQ(t)
			}
			scenario(t, on, redisPrivate)
		})
	}
}

// useRabbitMQ holds the shared RabbitMQ server until t ends, so that the
// outage tests of brokers/rabbitmq do not stop it meanwhile, and checks
// that it answers: the test is skipped when it does not, or fails under
// CI=true.
func useRabbitMQ(t *testing.T) {
	t.Helper()
	rabbitmqtest.Shared(t)
	testenv.RequireRabbitMQ(t)
}

// setUpBroker prepares c's broker: kfake with the request topic, or, on
// RabbitMQ, names unique to the test (request queue, dead-letter exchange
// and queue; the nodes' ids carry the same suffix, so their reply queues
// do too) and a cleanup that deletes every queue the test may have
// declared. Called before any node starts, so that the cleanup runs after
// they were killed and cannot declare a queue again.
func (c *cluster) setUpBroker(ids []string) {
	t := c.t
	t.Helper()
	switch c.on {
	case onKafka:
		c.requests = "clustertest.requests"
		kf, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, c.requests),
			kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(2 << 20)}))
		if err != nil {
			t.Fatalf("kfake: %v", err)
		}
		t.Cleanup(kf.Close)
		c.kafka = kf.ListenAddrs()
	case onRabbitMQ:
		c.requests = "clustertest.requests." + c.suffix
		queues := []string{c.requests, c.deadLetters() + ".dlq"}
		for _, id := range ids {
			queues = append(queues, c.replyAddr(id))
		}
		t.Cleanup(func() { deleteRabbitMQ(t, queues, c.deadLetters()+".dlx") })
	default:
		t.Fatalf("unknown backend %q", c.on)
	}
}

// deadLetters is the prefix of the test's dead-letter exchange and queue
// on RabbitMQ.
func (c *cluster) deadLetters() string { return "clustertest." + c.suffix }

// brokerYAML is the broker section of the nodes' configuration.
func (c *cluster) brokerYAML() string {
	if c.on == onRabbitMQ {
		return fmt.Sprintf(`broker:
  kind: rabbitmq
  publish_timeout: 30s
  rabbitmq:
    url: %s
    connection_name: clustertest-%s
    dead_letter_exchange: %s.dlx
    dead_letter_queue: %s.dlq
    reply_queue_expiry: 2m
    confirm_timeout: 30s
    reconnect_interval: 200ms
`, testenv.RabbitMQURL(), c.suffix, c.deadLetters(), c.deadLetters())
	}
	return fmt.Sprintf(`broker:
  kind: kafka
  publish_timeout: 30s
  kafka:
    brokers: [%s]
    write_timeout: 30s
    max_wait: 250ms
    commit_interval: 200ms
`, strings.Join(c.kafka, ", "))
}

// serviceBroker is what the test service needs of a backend's client.
type serviceBroker interface {
	brokers.Publisher
	brokers.Subscriber
}

// dialService returns a client of c's broker for the test service.
func (c *cluster) dialService() serviceBroker {
	t := c.t
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	if c.on == onRabbitMQ {
		cl, err := rabbitmq.Dial(rabbitmq.Config{
			URL:                testenv.RabbitMQURL(),
			ConnectionName:     "clustertest-service-" + c.suffix,
			DeadLetterExchange: c.deadLetters() + ".dlx",
			DeadLetterQueue:    c.deadLetters() + ".dlq",
			ConfirmTimeout:     30 * time.Second,
			ReconnectInterval:  200 * time.Millisecond,
			Logger:             quiet,
		})
		if err != nil {
			t.Fatal(err)
		}
		return cl
	}
	kcfg := kafkaConfig(c.kafka)
	kcfg.Logger = quiet
	b, err := kafka.New(kcfg)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// kafkaConfig is the Kafka configuration of the test service: quick group
// heartbeats and fetches; a generous write timeout, since under -race on a
// loaded 2-core machine one produce to kfake can take seconds.
func kafkaConfig(addrs []string) kafka.Config {
	return kafka.Config{
		Brokers:           addrs,
		HeartbeatInterval: 200 * time.Millisecond,
		SessionTimeout:    6 * time.Second, // kfake's minimum
		JoinGroupBackoff:  200 * time.Millisecond,
		CommitInterval:    200 * time.Millisecond,
		MaxWait:           250 * time.Millisecond,
		WriteTimeout:      30 * time.Second,
	}
}

// deleteRabbitMQ deletes the test's queues (whether or not they were
// declared) and its dead-letter exchange. Reply queues would expire by
// themselves (x-expires), the request queue would not.
func deleteRabbitMQ(t *testing.T, queues []string, exchange string) {
	conn, err := amqp.DialConfig(testenv.RabbitMQURL(), amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
	if err != nil {
		t.Errorf("delete the test's RabbitMQ queues %v: %v", queues, err)
		return
	}
	defer conn.Close()
	// A failed deletion closes its channel: one channel per deletion.
	del := func(what string, f func(*amqp.Channel) error) {
		ch, err := conn.Channel()
		if err == nil {
			err = f(ch)
			_ = ch.Close()
		}
		if err != nil {
			t.Errorf("delete %s: %v", what, err)
		}
	}
	for _, q := range queues {
		del("queue "+q, func(ch *amqp.Channel) error {
			_, err := ch.QueueDelete(q, false, false, false)
			return err
		})
	}
	del("exchange "+exchange, func(ch *amqp.Channel) error { return ch.ExchangeDelete(exchange, false, false) })
}
