package responder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/syncgate/syncgate/brokers"
)

// Bounds of the pause between attempts to publish a reply the broker
// cannot take yet: short enough that a connection blip costs little
// latency, long enough not to spin while a reconnection takes seconds.
const (
	minReplyBackoff = 50 * time.Millisecond
	maxReplyBackoff = time.Second
)

// DefaultReplyRetry is how long a reply that cannot be published yet is
// retried when its request carries no deadline (Service.ReplyRetry).
const DefaultReplyRetry = time.Minute

// UnroutableReplyRetry is how long a reply whose address the broker does
// not know (brokers.ErrUnroutable) is retried before it is dropped. On
// Kafka that is a gateway's reply topic lost in an empty broker restart,
// which the gateway recreates within a couple of seconds; on RabbitMQ a
// reply queue that expired with its node. Either way running the request
// again would not help, and its side effects would happen twice.
const UnroutableReplyRetry = 5 * time.Second

// errReplyExpired: the request's deadline passed before its reply could be
// published; nobody waits for it any more. errReplyNowhere: the reply's
// address stayed unknown to the broker for UnroutableReplyRetry.
var (
	errReplyExpired = errors.New("responder: the request's deadline passed before its reply could be published")
	errReplyNowhere = errors.New("responder: the reply address stayed unroutable")
)

// publishReply publishes m to dest, retrying with backoff while the
// publisher reports brokers.ErrUnavailable (or an attempt times out) until
// until, or ctx ends.
//
// A reply that cannot be published yet is no fault of its request: failing
// the delivery would have the broker redeliver it at once, and a
// connection blip of a second would spend a quorum queue's whole delivery
// limit in milliseconds and dead-letter every request in flight. Holding
// the delivery unsettled while retrying spends no attempt. A retried
// publish may duplicate a reply (one whose confirm was lost with the
// connection); the gateway keeps the first.
//
// A reply address the broker does not know (ErrUnroutable) is retried the
// same way for at most UnroutableReplyRetry.
//
// It returns nil once published, errReplyExpired once until passed,
// errReplyNowhere once the address stayed unroutable, ctx's error when ctx
// ended, and at once any other publish error (ErrClosed).
func (s *Service) publishReply(ctx context.Context, log requestLog, dest string, m brokers.Message, until time.Time) error {
	timeout := s.ReplyTimeout
	if timeout <= 0 {
		timeout = 5 * time.Second
	}
	backoff := minReplyBackoff
	unroutableUntil := time.Now().Add(UnroutableReplyRetry)
	for attempt := 1; ; attempt++ {
		// An attempt outlives ctx: a handler's reply is worth sending while
		// the subscription stops; only the retrying ends with ctx.
		// One context for both bounds (the attempt's timeout and until):
		// the earlier decides, as two nested ones would, at half the cost.
		pctx, cancel := context.WithDeadline(context.WithoutCancel(ctx), earlier(time.Now().Add(timeout), until))
		err := s.Publisher.Publish(pctx, dest, m)
		cancel()
		if err == nil {
			if attempt > 1 {
				log.Info(ctx, "reply published after the broker was unavailable", slog.Int("attempts", attempt))
			}
			return nil
		}
		switch {
		case ctx.Err() != nil:
			return fmt.Errorf("responder: publish reply to %q: %w", dest, ctx.Err())
		case !time.Now().Before(until):
			return fmt.Errorf("%w (%d attempts, last: %w)", errReplyExpired, attempt, err)
		case errors.Is(err, brokers.ErrUnroutable):
			if !time.Now().Before(unroutableUntil) {
				return fmt.Errorf("%w (%d attempts, last: %w)", errReplyNowhere, attempt, err)
			}
		case !errors.Is(err, brokers.ErrUnavailable) && !errors.Is(err, context.DeadlineExceeded):
			return fmt.Errorf("responder: publish reply to %q: %w", dest, err)
		}
		if attempt == 1 {
			log.Warn(ctx, "cannot publish the reply yet; retrying until the request's deadline",
				slog.String("reply_to", dest), slog.Any("error", err), slog.Time("until", until))
		}
		// Jitter spreads the retries of the many handlers a reconnection
		// held back, so they do not all hit the reopened channel at once.
		pause := backoff/2 + rand.N(backoff/2+1)
		pause = min(pause, time.Until(until))
		if err := sleep(ctx, pause); err != nil {
			return fmt.Errorf("responder: publish reply to %q: %w", dest, err)
		}
		backoff = min(2*backoff, maxReplyBackoff)
	}
}

// earlier returns the earlier of a and b.
func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// sleep waits for d, or returns ctx.Err() when ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
