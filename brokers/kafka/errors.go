package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/syncgate/syncgate/brokers"
)

// ErrMessageTooLarge is returned by Publish for a record larger than
// Config.MaxMessageBytes or than the broker accepts.
var ErrMessageTooLarge = errors.New("kafka: message too large")

// classify maps a kafka-go error to the brokers sentinels, keeping the cause.
func classify(topic string, err error) error {
	if err == nil {
		return nil
	}
	switch {
	case errors.Is(err, context.Canceled):
		// The caller gave up; the broker is not known to be at fault.
		return fmt.Errorf("kafka: publish to %q: %w", topic, err)
	case errors.Is(err, kafkago.UnknownTopicOrPartition),
		errors.Is(err, kafkago.InvalidTopic),
		errors.Is(err, kafkago.TopicAuthorizationFailed):
		return fmt.Errorf("%w: kafka topic %q: %w", brokers.ErrUnroutable, topic, err)
	case errors.Is(err, kafkago.MessageSizeTooLarge),
		errors.Is(err, kafkago.RecordListTooLarge):
		return fmt.Errorf("%w: topic %q: %w", ErrMessageTooLarge, topic, err)
	default:
		// Connection refused or reset, dial or ack timeouts, no leader, not
		// enough replicas, the caller's deadline while waiting for acks: the
		// broker could not take the message now.
		return fmt.Errorf("%w: kafka publish to %q: %w", brokers.ErrUnavailable, topic, err)
	}
}

// fatalGroupError reports errors a consumer group cannot recover from by
// retrying: Subscribe returns them.
func fatalGroupError(err error) bool {
	for _, e := range []error{
		kafkago.GroupAuthorizationFailed, kafkago.TopicAuthorizationFailed,
		kafkago.InvalidGroupId, kafkago.InvalidSessionTimeout,
		kafkago.InconsistentGroupProtocol, kafkago.SASLAuthenticationFailed,
		kafkago.UnsupportedSASLMechanism,
	} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// kafkaLogger adapts slog to kafka-go's Logger. kafka-go logs routine events
// (reconnects, rebalances) through both of its loggers, so they go to Debug;
// this package logs what an operator must act on itself. l carries the
// package's component already: the kafka-go logger is named under
// library, not a second component key.
func kafkaLogger(l *slog.Logger, library string) kafkago.LoggerFunc {
	return func(msg string, args ...any) {
		if l.Enabled(context.Background(), slog.LevelDebug) {
			l.Debug(fmt.Sprintf(msg, args...), "library", library)
		}
	}
}
