// Package outbox keeps the requests a broker could not take, durably, so
// that they are published once it is back instead of answered 503 (issue
// 21): a route with an outbox answers 202 and queues the request; a relay
// publishes the queue in order. Two stores: PostgreSQL (PG), whose rows
// any node's relay can take over with FOR UPDATE SKIP LOCKED, and a local
// embedded one (Bolt, on bbolt) for a single node.
//
// This package is the stores, their contract and the relay; the gateway
// queues (gateway.Config.Outbox) and the node runs the relay.
package outbox

import (
	"context"
	"errors"
	"time"

	"github.com/syncgate/syncgate/brokers"
)

var (
	// ErrFull: the outbox holds as many items as it may; the request is
	// refused (503 with Retry-After).
	ErrFull = errors.New("outbox: full")
	// ErrExists: an item with this id is queued already.
	ErrExists = errors.New("outbox: id queued already")
)

// Item is one request waiting to be published.
type Item struct {
	// ID is the request's correlation id: at most one item per id.
	ID      string
	Dest    string
	Message brokers.Message
	// Queued is when it was put; Deadline when its request expires (an
	// item past it is dropped, not published: nobody waits any more).
	Queued, Deadline time.Time
	// Seq orders the items: the order they were put. Set by the store.
	Seq int64
}

// Store is an outbox's storage. Claim leases the oldest items not leased
// (or whose lease ran out: their relay died) so that one relay at a time
// publishes each; Done removes one once published (or dropped).
type Store interface {
	Put(ctx context.Context, it Item) error
	Claim(ctx context.Context, n int, lease time.Duration) ([]Item, error)
	Done(ctx context.Context, id string) error
	// Has reports whether an item with id waits (a poll says "queued").
	Has(ctx context.Context, id string) (bool, error)
	// Stats returns how many items wait and when the oldest was queued
	// (zero when none).
	Stats(ctx context.Context) (depth int, oldest time.Time, err error)
	Close() error
}
