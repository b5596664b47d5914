// Package publish is a tap sink that publishes each exchange as a JSON
// message to a destination of the node's broker: a Kafka topic, a
// RabbitMQ queue, or a RabbitMQ exchange (destination /exchanges/E/K).
package publish

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/tap"
)

// Publisher is what the sink needs of a broker.
type Publisher interface {
	Publish(ctx context.Context, dest string, m brokers.Message) error
}

// Header marks a tap's message, so that nobody takes it for a request or
// a reply: syncgate-tap: exchange.
const Header = "syncgate-tap"

// Config configures a Sink.
type Config struct {
	Publisher   Publisher
	Destination string
	// Timeout bounds one publish (default 5 s).
	Timeout time.Duration
	// Concurrency bounds the publishes of a batch under way at once
	// (default 32).
	Concurrency int
}

// Sink publishes exchanges, each one message keyed by its correlation id
// (content-type application/json), the batch's messages side by side.
type Sink struct{ cfg Config }

var _ tap.Sink = (*Sink)(nil)

// New returns a sink publishing to cfg.Destination, which must exist
// (the operator creates the topic, the queue or the exchange).
func New(cfg Config) (*Sink, error) {
	if cfg.Publisher == nil || cfg.Destination == "" {
		return nil, errors.New("publish: a publisher and a destination are required")
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 5 * time.Second
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 32
	}
	return &Sink{cfg: cfg}, nil
}

// Write publishes batch; it fails with the first error, after every
// publish of the batch returned (some may have been published).
func (s *Sink) Write(ctx context.Context, batch []tap.Exchange) error {
	sem := make(chan struct{}, s.cfg.Concurrency)
	var wg sync.WaitGroup
	var once sync.Once
	var first error
	for i := range batch {
		x := &batch[i]
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			// The flush's time is up: what is not under way is not
			// published.
			wg.Wait()
			return fmt.Errorf("publish: to %s: %d of %d not sent: %w", s.cfg.Destination, len(batch)-i, len(batch), ctx.Err())
		}
		wg.Go(func() {
			defer func() { <-sem }()
			m := brokers.Message{Key: x.CorrelationID, Body: tap.AppendJSON(nil, x),
				Headers: map[string]string{"content-type": "application/json", Header: "exchange"}}
			pctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
			defer cancel()
			if err := s.cfg.Publisher.Publish(pctx, s.cfg.Destination, m); err != nil {
				once.Do(func() { first = fmt.Errorf("publish: to %s: %w", s.cfg.Destination, err) })
			}
		})
	}
	wg.Wait()
	return first
}

// Close does nothing: the broker is the node's.
func (s *Sink) Close() error { return nil }
