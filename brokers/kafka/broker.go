package kafka

import (
	"errors"

	"github.com/syncgate/syncgate/brokers"
)

// Broker is a Publisher and a Subscriber made from one Config: what a
// gateway node (requests out, replies in) or a responder service (requests
// in, replies out) needs.
type Broker struct {
	*Publisher
	*Subscriber
}

var (
	_ brokers.Publisher  = (*Broker)(nil)
	_ brokers.Subscriber = (*Broker)(nil)
)

// New returns a Broker for cfg. Like NewPublisher and NewSubscriber it does
// not connect.
func New(cfg Config) (*Broker, error) {
	p, err := NewPublisher(cfg)
	if err != nil {
		return nil, err
	}
	s, err := NewSubscriber(cfg)
	if err != nil {
		_ = p.Close()
		return nil, err
	}
	return &Broker{Publisher: p, Subscriber: s}, nil
}

// Close stops the subscriptions first (their handlers may still publish
// replies), then the publisher. It is idempotent.
func (b *Broker) Close() error {
	return errors.Join(b.Subscriber.Close(), b.Publisher.Close())
}
