package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"strings"
	"sync"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/brokers"
	natsb "github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/correlation/redisstate"
)

// Start-up against a broker (or, in cluster mode, Redis) that is not there
// yet is the same for every backend: the node listens at once, answers
// /healthz 200 and /readyz 503 naming the failing check, and connects in
// the background with a capped, jittered back-off. It logs one WARN when
// the first attempt fails and one INFO when it connects; the attempts in
// between log at debug level. broker.wait_for (--wait-for-broker) bounds
// the wait: past it, Run returns an error naming the address.
//
// A refusal that waiting does not cure ends Run at once with an error
// naming the setting to fix (see fatal): RabbitMQ refusing the URL's user
// name or password (naming the user and vhost, never the password), Redis
// refusing cluster.redis.password, or the node id held by a live node.

// Back-off between connection attempts: doubling from backoffMin, capped
// at backoffMax, each step jittered by up to ±25 %.
var (
	backoffMin = 100 * time.Millisecond
	backoffMax = 5 * time.Second
)

func jitter(d time.Duration) time.Duration {
	return d - d/4 + time.Duration(rand.Int64N(int64(d/2)+1))
}

// lazyBroker stands for the backend until the node connected to it:
// Publish fails with brokers.ErrUnavailable before, Subscribe waits for it.
type lazyBroker struct {
	set  chan struct{} // closed once b is set
	once sync.Once
	b    Broker
}

func newLazyBroker() *lazyBroker { return &lazyBroker{set: make(chan struct{})} }

func (l *lazyBroker) setBroker(b Broker) { l.once.Do(func() { l.b = b; close(l.set) }) }

func (l *lazyBroker) get() Broker {
	select {
	case <-l.set:
		return l.b
	default:
		return nil
	}
}

func (l *lazyBroker) Publish(ctx context.Context, dest string, m brokers.Message) error {
	b := l.get()
	if b == nil {
		return fmt.Errorf("%w: broker not connected yet", brokers.ErrUnavailable)
	}
	return b.Publish(ctx, dest, m)
}

func (l *lazyBroker) Subscribe(ctx context.Context, source string, h brokers.Handler, opts ...brokers.SubscribeOption) error {
	select {
	case <-ctx.Done():
		return nil
	case <-l.set:
	}
	return l.b.Subscribe(ctx, source, h, opts...)
}

// Close closes the backend if it was connected. The connecting goroutine
// has stopped before the node closes its broker (see Run).
func (l *lazyBroker) Close() error {
	if b := l.get(); b != nil {
		return b.Close()
	}
	return nil
}

// Ready is false until connected, then what the backend reports (if it
// tracks its connection).
func (l *lazyBroker) Ready() bool {
	b := l.get()
	if b == nil {
		return false
	}
	if r, ok := b.(interface{ Ready() bool }); ok {
		return r.Ready()
	}
	return true
}

// brokerAddr names the broker the node connects to, without credentials.
func (n *Node) brokerAddr() string {
	switch n.cfg.Broker.Kind {
	case "kafka":
		return "kafka " + strings.Join(n.cfg.Broker.Kafka.Brokers, ",")
	case "rabbitmq":
		if u, err := url.Parse(n.cfg.Broker.RabbitMQ.URL); err == nil {
			return "rabbitmq " + u.Redacted()
		}
		return "rabbitmq (invalid url)"
	case "nats":
		return "nats " + n.cfg.Broker.NATS.Redacted().URL
	}
	return n.cfg.Broker.Kind
}

// connectOnce takes the step not done yet: in cluster mode the node id
// first (a second node with the same id must not touch the broker at
// all), then the broker. It returns the address of the step that failed.
func (n *Node) connectOnce(ctx context.Context) (string, error) {
	if n.router != nil && n.getLease() == nil {
		if err := n.joinCluster(ctx); err != nil {
			if goredis.IsAuthError(err) {
				err = fmt.Errorf("cluster.redis.password: Redis (%s) wants another password (waiting does not help): %w", n.cfg.Cluster.Redis.Servers(), err)
			}
			return "redis " + n.cfg.Cluster.Redis.Servers(), &joinError{err}
		}
	}
	b, err := NewBroker(n.cfg.Broker, n.log)
	switch {
	case errors.Is(err, rabbitmq.ErrAccessRefused):
		err = fmt.Errorf("broker.rabbitmq.url: %w", err)
	case errors.Is(err, natsb.ErrAccessRefused):
		err = fmt.Errorf("broker.nats: %w", err)
	}
	if err != nil {
		return n.brokerAddr(), err
	}
	n.warnMaxPayload(ctx, b)
	n.broker.setBroker(b)
	return "", nil
}

// warnMaxPayload logs one WARN when the node accepts request bodies larger
// than the NATS server's max_payload (http.max_body, or a route's
// max_body, above it), saying what happens to them: they travel through
// the JetStream object store broker.nats.body_bucket (an extra store and
// fetch each), or, in core mode on a server without JetStream, every such
// request is answered 503 broker-unavailable. A limit equal to max_payload
// is not warned about, although a body that size plus its envelope headers
// goes through the object store too. Other backends have no such limit
// here.
func (n *Node) warnMaxPayload(ctx context.Context, b Broker) {
	c, ok := b.(interface {
		MaxPayload() int64
		CheckJetStream(context.Context) error
	})
	if !ok {
		return
	}
	field, limit := "http.max_body", int64(n.cfg.HTTP.MaxBody)
	for i, r := range n.cfg.Routes {
		if int64(r.MaxBody) > limit {
			field, limit = fmt.Sprintf("routes[%d].max_body (route %s)", i, r.Name), int64(r.MaxBody)
		}
	}
	maxPayload := c.MaxPayload()
	if limit <= maxPayload {
		return
	}
	nc := n.cfg.Broker.NATS
	attrs := []any{slog.String("setting", field), slog.Int64("max_body", limit),
		slog.Int64("max_payload", maxPayload), slog.String("mode", nc.Mode), slog.String("body_bucket", nc.BodyBucket)}
	jsErr := error(nil)
	if nc.Mode != natsb.ModeJetStream {
		cctx, cancel := context.WithTimeout(ctx, nc.DialTimeout)
		jsErr = c.CheckJetStream(cctx)
		cancel()
	}
	if jsErr != nil {
		n.log.Warn("nats: request bodies above the server's max_payload will be answered 503 broker-unavailable: "+
			"they need the JetStream object store, and the server offers no JetStream; "+
			"start it with -js, raise its max_payload, or lower "+field+" to max_payload",
			append(attrs, slog.Any("error", jsErr))...)
		return
	}
	n.log.Warn("nats: request bodies above the server's max_payload travel through the JetStream object store "+
		"body_bucket (one more store and fetch per message; lower "+field+" to max_payload, or raise max_payload, to avoid it)",
		attrs...)
}

// connect retries connectOnce until it succeeds, ctx ends (nil) or the
// error is fatal (the node id is held by a live process). It closes
// n.connected on success.
func (n *Node) connect(ctx context.Context) error {
	delay := backoffMin
	failing := ""
	for attempt := 1; ; attempt++ {
		addr, err := n.connectOnce(ctx)
		if err == nil {
			if failing != "" {
				n.log.Info("connected", slog.String("to", n.brokerAddr()), slog.Int("attempts", attempt))
			}
			close(n.connected)
			return nil
		}
		if ctx.Err() != nil {
			return nil
		}
		if fatal(err) {
			return err
		}
		n.setWaitingFor(addr)
		if failing != addr {
			n.log.Warn("not reachable; retrying with back-off until it is (/readyz answers 503 meanwhile)",
				slog.String("to", addr), slog.Any("error", err))
			failing = addr
		} else {
			n.log.Debug("still not reachable", slog.String("to", addr), slog.Int("attempt", attempt), slog.Any("error", err))
		}
		t := time.NewTimer(jitter(delay))
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		delay = min(2*delay, backoffMax)
	}
}

// fatal reports whether a connection attempt failed for a reason waiting
// does not cure: the node id held by a live process, Redis refusing the
// password, or a broker configuration the backend refuses (anything but
// brokers.ErrUnavailable, such as RabbitMQ's ACCESS_REFUSED for a wrong
// user name or password).
func fatal(err error) bool {
	var joinErr *joinError
	if errors.As(err, &joinErr) {
		return errors.Is(err, redisstate.ErrNodeTaken) || goredis.IsAuthError(err)
	}
	return !errors.Is(err, brokers.ErrUnavailable)
}

// joinError marks a failure to take the node id (see connectOnce).
type joinError struct{ err error }

func (e *joinError) Error() string { return e.err.Error() }
func (e *joinError) Unwrap() error { return e.err }

// waitForBroker ends the node when it is not ready within d (broker.wait_for).
func (n *Node) waitForBroker(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return nil
	case <-n.ready:
		return nil
	case <-t.C:
		return fmt.Errorf("%s not reachable within broker.wait_for (--wait-for-broker) %s; giving up", n.waitingFor(), d)
	}
}

func (n *Node) setWaitingFor(addr string) {
	n.mu.Lock()
	n.waiting = addr
	n.mu.Unlock()
}

func (n *Node) waitingFor() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.waiting == "" {
		return n.brokerAddr()
	}
	return n.waiting
}

func (n *Node) getLease() *redisstate.Lease {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.lease
}
