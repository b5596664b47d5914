package outbox

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/syncgate/syncgate/brokers"
)

// Publisher is what a Relay needs of a broker.
type Publisher interface {
	Publish(ctx context.Context, dest string, m brokers.Message) error
}

// Relay publishes an outbox's items in the order they were queued, as
// soon as the broker takes them. An item whose deadline passed is dropped
// (Expired is told). A publish that fails ends the round, so that no
// later item overtakes it; the next round comes after Retry. Several
// relays may run on one PG store (one per node): one of them leads and
// publishes, the others wait to take over (PG.Lead), so the order holds
// across nodes. An item is published once, unless a relay dies between
// its publish and Done, or loses the lead in the middle of a round (its
// connection to PostgreSQL broke) and finishes the round while another
// takes over: services see at-least-once, as with any broker.
type Relay struct {
	Store     Store
	Publisher Publisher
	// Poll is how often the store is read while it seems empty (default
	// 500 ms); Wake, when set, ends the wait at once (a Put on this node).
	Poll time.Duration
	Wake <-chan struct{}
	// Retry is the pause after a failed publish (default 1 s).
	Retry time.Duration
	// Batch bounds the items claimed at once (default 64); Lease is how
	// long they are held (default 30 s).
	Batch int
	Lease time.Duration
	// PublishTimeout bounds one publish (default 5 s).
	PublishTimeout time.Duration
	// Published and Expired, when set, are told of each item published
	// or dropped (metrics, the request's record).
	Published, Expired func(Item)
	// Failed, when set, is told of each item dropped because the broker
	// refused it for good (not Retriable: its destination is gone, it is
	// too large): it would hold up the queue behind it for ever.
	Failed func(Item, error)
	Logger *slog.Logger
}

func (r *Relay) defaults() {
	if r.Poll <= 0 {
		r.Poll = 500 * time.Millisecond
	}
	if r.Retry <= 0 {
		r.Retry = time.Second
	}
	if r.Batch <= 0 {
		r.Batch = 64
	}
	if r.Lease <= 0 {
		r.Lease = 30 * time.Second
	}
	if r.PublishTimeout <= 0 {
		r.PublishTimeout = 5 * time.Second
	}
	if r.Logger == nil {
		r.Logger = slog.Default()
	}
}

// Run relays until ctx ends.
func (r *Relay) Run(ctx context.Context) error {
	r.defaults()
	log := r.Logger.With(slog.String("component", "outbox"))
	failing := false
	following := false // another relay leads (logged once)
	for {
		wait := r.Poll
		items, err := r.claim(ctx, log, &following)
		if err != nil && ctx.Err() == nil {
			log.WarnContext(ctx, "outbox: claiming items failed", slog.Any("error", err))
			wait = r.Retry
		}
		for i, it := range items {
			if !it.Deadline.IsZero() && !time.Now().Before(it.Deadline) {
				_ = r.Store.Done(ctx, it.ID)
				if r.Expired != nil {
					r.Expired(it)
				}
				continue
			}
			pctx, cancel := context.WithTimeout(ctx, r.PublishTimeout)
			err := r.Publisher.Publish(pctx, it.Dest, it.Message)
			cancel()
			if err != nil && ctx.Err() == nil && !Retriable(err) {
				log.ErrorContext(ctx, "outbox: the broker refused a queued request for good; it is dropped unpublished",
					slog.String("correlation_id", it.ID), slog.String("destination", it.Dest), slog.Any("error", err))
				_ = r.Store.Done(ctx, it.ID)
				if r.Failed != nil {
					r.Failed(it, err)
				}
				continue
			}
			if err != nil {
				if ctx.Err() != nil {
					return nil
				}
				if !failing {
					log.WarnContext(ctx, "outbox: the broker does not take the queued requests yet; retrying",
						slog.Int("claimed", len(items)-i), slog.Any("error", err))
					failing = true
				}
				// The rest of the round waits for its lease to run out
				// on another node; on this one it is claimed again once
				// released.
				r.release(ctx, items[i:])
				wait = r.Retry
				break
			}
			if failing {
				log.InfoContext(ctx, "outbox: the broker takes the queued requests again")
				failing = false
			}
			if err := r.Store.Done(ctx, it.ID); err != nil {
				log.WarnContext(ctx, "outbox: an item was published but not removed; it may be published again",
					slog.String("correlation_id", it.ID), slog.Any("error", err))
			}
			if r.Published != nil {
				r.Published(it)
			}
		}
		if len(items) == r.Batch && wait == r.Poll {
			continue // more may wait
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-r.Wake:
		case <-t.C:
		}
		t.Stop()
	}
}

// Retriable reports whether a publish failed for a reason that passes:
// the broker was unavailable or did not answer in time
// (brokers.ErrUnavailable, a deadline). Other failures (an unroutable
// destination, a message too large) would fail again.
func Retriable(err error) bool {
	return errors.Is(err, brokers.ErrUnavailable) || errors.Is(err, context.DeadlineExceeded)
}

// leader is a Store on which one relay at a time publishes: Lead reports
// whether it is this one, taking the lead when it is free.
type leader interface {
	Lead(ctx context.Context) (bool, error)
}

// claim claims the next items, when this relay leads (see leader).
func (r *Relay) claim(ctx context.Context, log *slog.Logger, following *bool) ([]Item, error) {
	if l, ok := r.Store.(leader); ok {
		leads, err := l.Lead(ctx)
		if err != nil {
			return nil, err
		}
		if leads == *following {
			*following = !leads
			if leads {
				log.InfoContext(ctx, "outbox: this node's relay publishes the queue now")
			} else {
				log.InfoContext(ctx, "outbox: another node's relay publishes the queue; this one takes over if it stops")
			}
		}
		if !leads {
			return nil, nil
		}
	}
	return r.Store.Claim(ctx, r.Batch, r.Lease)
}

// releaser is a Store that can give up its leases early.
type releaser interface {
	Release(ctx context.Context, ids []string) error
}

// release gives the leases of items back, where the store can, so that
// the next round claims them again in order.
func (r *Relay) release(ctx context.Context, items []Item) {
	rel, ok := r.Store.(releaser)
	if !ok {
		return
	}
	ids := make([]string, len(items))
	for i, it := range items {
		ids[i] = it.ID
	}
	_ = rel.Release(context.WithoutCancel(ctx), ids)
}
