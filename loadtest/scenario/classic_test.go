package scenario

import (
	"errors"
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/brokers/rabbitmq/rabbitmqtest"
	"github.com/syncgate/syncgate/internal/testenv"
)

// The classic target on the RabbitMQ server of the rabbitmq scenario
// (testenv.RequireRabbitMQ): 300 echo requests from 16 callers through its
// node, answered 200 with their body by the service in this process; once
// stopped, neither its work queue nor its node's reply queue is left.
func TestClassicTarget(t *testing.T) {
	rabbitmqtest.Shared(t) // no outage test of brokers/rabbitmq stops it meanwhile
	testenv.RequireRabbitMQ(t)
	cfg := classicConfig(nodeConfig("rabbitmq"))
	tg, stop, err := startClassic(cfg)
	if err != nil {
		t.Fatal(err)
	}
	queues := []string{cfg.Routes[0].Destination, cfg.ReplyTo}
	if cfg.ReplyTo == "syncgate.reply.loadtest" {
		t.Errorf("reply queue %s: the default node's", cfg.ReplyTo)
	}
	driveRawLoop(t, tg.op())
	rep := &Report{}
	stop(rep)
	for _, n := range rep.Notes {
		t.Error(n)
	}
	for _, r := range tg.samples.Get() {
		t.Errorf("unexpected answer: %s", r)
	}
	for _, q := range queues {
		if err := queueExists(q); err == nil {
			t.Errorf("queue %s left behind", q)
		} else if !isNotFound(err) {
			t.Errorf("queue %s: %v", q, err)
		}
	}
}

// queueExists declares q passively: an error when it does not exist.
func queueExists(q string) error {
	conn, err := amqp.Dial(rabbitmq.DefaultURL)
	if err != nil {
		return err
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		return err
	}
	_, err = ch.QueueDeclarePassive(q, true, false, false, false, nil)
	return err
}

func isNotFound(err error) bool {
	var ae *amqp.Error
	return errors.As(err, &ae) && ae.Code == amqp.NotFound
}
