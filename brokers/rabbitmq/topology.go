package rabbitmq

// The queues and exchanges a subscription declares, idempotently on every
// setup (a queue deleted under its consumer is declared again): the work or
// reply queue with its dead-lettering arguments, the optional exchange
// binding, and the dead-letter exchange and queue. The publisher's exchange
// declaration stays in Dial.

import (
	"fmt"

	amqp "github.com/rabbitmq/amqp091-go"
)

// declare declares (idempotently) what the subscription consumes from.
func (s *subscription) declare(ch *amqp.Channel) error {
	cfg := s.c.cfg
	if err := declareDeadLetter(ch, cfg); err != nil {
		return err
	}
	args := amqp.Table{"x-dead-letter-exchange": cfg.DeadLetterExchange}
	if s.sc.Inbox {
		args["x-expires"] = cfg.ReplyQueueExpiry.Milliseconds()
		args["x-queue-type"] = amqp.QueueTypeClassic
	} else {
		args["x-queue-type"] = cfg.QueueType
		if cfg.QueueType == QueueTypeQuorum {
			args["x-delivery-limit"] = cfg.MaxDeliveries - 1
		}
	}
	if _, err := ch.QueueDeclare(s.queue, true, false, false, false, args); err != nil {
		return fmt.Errorf("declare queue %q: %w", s.queue, err)
	}
	if cfg.Exchange != "" {
		if err := ch.ExchangeDeclare(cfg.Exchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
			return fmt.Errorf("declare exchange %q: %w", cfg.Exchange, err)
		}
		if err := ch.QueueBind(s.queue, s.source, cfg.Exchange, false, nil); err != nil {
			return fmt.Errorf("bind queue %q to %q: %w", s.queue, cfg.Exchange, err)
		}
	}
	return nil
}

func declareDeadLetter(ch *amqp.Channel, cfg Config) error {
	if err := ch.ExchangeDeclare(cfg.DeadLetterExchange, amqp.ExchangeFanout, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare dead-letter exchange %q: %w", cfg.DeadLetterExchange, err)
	}
	if _, err := ch.QueueDeclare(cfg.DeadLetterQueue, true, false, false, false, nil); err != nil {
		return fmt.Errorf("declare dead-letter queue %q: %w", cfg.DeadLetterQueue, err)
	}
	if err := ch.QueueBind(cfg.DeadLetterQueue, "", cfg.DeadLetterExchange, false, nil); err != nil {
		return fmt.Errorf("bind dead-letter queue %q: %w", cfg.DeadLetterQueue, err)
	}
	return nil
}
