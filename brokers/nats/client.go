package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncgate/syncgate/brokers"
)

// ErrAccessRefused is wrapped by Dial's error when the server refused the
// configured credentials (an authorization violation, an expired or
// revoked credential). Unlike an unreachable server it does not wrap
// brokers.ErrUnavailable: retrying the same credentials does not help.
var ErrAccessRefused = errors.New("nats: access refused")

// ErrMessageTooLarge is returned by Publish for a message whose headers
// alone exceed the server's max_payload, or whose body does and cannot be
// put in the body bucket (no JetStream on the server).
var ErrMessageTooLarge = errors.New("nats: message too large")

// Client is one NATS endpoint of syncgate: it implements both
// brokers.Publisher and brokers.Subscriber on one connection, which
// nats.go reconnects after a loss (subscriptions included). Client is
// safe for concurrent use.
type Client struct {
	cfg Config
	log *slog.Logger
	nc  *natsgo.Conn
	js  jetstream.JetStream

	ctx    context.Context // ends when Close starts
	cancel context.CancelFunc

	mu     sync.Mutex // guards closed and subs; orders wg.Add against Close
	closed bool
	subs   map[*subscription]struct{}
	wg     sync.WaitGroup // running Subscribe calls

	bodies  bodyStore
	libDone chan struct{} // closed by nats.go's closed handler

	upMu     sync.Mutex
	up       chan struct{} // closed at the next reconnection, then replaced
	closeOne sync.Once
}

// Dial validates cfg (after SetDefaults) and connects. An unreachable
// server is reported at once as an error wrapping brokers.ErrUnavailable,
// refused credentials as one wrapping ErrAccessRefused; in jetstream mode
// a server without JetStream is an error naming nats.mode. After that first
// connection, losses are recovered by nats.go (see the package doc).
func Dial(cfg Config) (*Client, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Client{cfg: cfg, log: log.With("component", "nats"), libDone: make(chan struct{}), up: make(chan struct{})}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.bodies.c = c
	opts, err := cfg.options(connHandlers{c})
	if err != nil {
		c.cancel()
		return nil, err
	}
	nc, err := natsgo.Connect(cfg.URL, opts...)
	if err != nil {
		c.cancel()
		if refused(err) {
			return nil, fmt.Errorf("%w at %s: %v: check nats.user, nats.password, nats.token or nats.credentials_file",
				ErrAccessRefused, redactURLs(cfg.URL), err)
		}
		return nil, fmt.Errorf("%w: nats: connect to %s: %v", brokers.ErrUnavailable, redactURLs(cfg.URL), err)
	}
	c.nc = nc
	if c.js, err = jetstream.New(nc); err != nil {
		c.closeConn()
		return nil, fmt.Errorf("nats: jetstream: %w", err)
	}
	if cfg.Mode == ModeJetStream {
		ctx, cancel := context.WithTimeout(c.ctx, cfg.DialTimeout)
		_, err := c.js.AccountInfo(ctx)
		cancel()
		if err != nil {
			c.closeConn()
			if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) {
				return nil, fmt.Errorf("nats.mode: jetstream, but the server at %s has no JetStream for this account (start it with -js, or use mode core): %w",
					nc.ConnectedUrlRedacted(), err)
			}
			return nil, fmt.Errorf("%w: nats: JetStream at %s does not answer: %v", brokers.ErrUnavailable, redactURLs(cfg.URL), err)
		}
	}
	c.log.Debug("nats: connected", slog.String("url", nc.ConnectedUrlRedacted()),
		slog.String("server_version", nc.ConnectedServerVersion()), slog.String("mode", cfg.Mode),
		slog.Int64("max_payload", nc.MaxPayload()))
	return c, nil
}

func refused(err error) bool {
	return errors.Is(err, natsgo.ErrAuthorization) || errors.Is(err, natsgo.ErrAuthExpired) ||
		errors.Is(err, natsgo.ErrAuthRevoked) || errors.Is(err, natsgo.ErrAccountAuthExpired)
}

// connHandlers receives nats.go's connection events.
type connHandlers struct{ c *Client }

func (h connHandlers) disconnected(_ *natsgo.Conn, err error) {
	if h.c.ctx.Err() != nil {
		return
	}
	h.c.log.Warn("nats: disconnected; publishing fails with brokers.ErrUnavailable until reconnected", slog.Any("error", err))
}

func (h connHandlers) reconnected(nc *natsgo.Conn) {
	h.c.log.Info("nats: reconnected", slog.String("url", nc.ConnectedUrlRedacted()))
	h.c.upMu.Lock()
	close(h.c.up)
	h.c.up = make(chan struct{})
	h.c.upMu.Unlock()
}

// awaitConnected returns true once the connection is up (at once if it is),
// false if ctx ends first.
func (c *Client) awaitConnected(ctx context.Context) bool {
	for {
		c.upMu.Lock()
		up := c.up
		c.upMu.Unlock()
		if c.nc.IsConnected() {
			return true
		}
		select {
		case <-up:
		case <-ctx.Done():
			return false
		}
	}
}

func (h connHandlers) closed(*natsgo.Conn) {
	if h.c.ctx.Err() == nil {
		h.c.log.Error("nats: connection closed for good (reconnect_attempts spent); restart the process")
	}
	close(h.c.libDone)
}

func (h connHandlers) asyncError(_ *natsgo.Conn, sub *natsgo.Subscription, err error) {
	if sub != nil {
		h.c.log.Warn("nats: subscription error", slog.String("subject", sub.Subject), slog.Any("error", err))
		return
	}
	h.c.log.Warn("nats: connection error", slog.Any("error", err))
}

// Ready reports whether the Client is connected and every running
// subscription consumes (for /readyz). It turns false during an outage and
// true again after the reconnection, unlike the one-time WithReady callback.
func (c *Client) Ready() bool {
	if c.ctx.Err() != nil || !c.nc.IsConnected() {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for s := range c.subs {
		if !s.consuming.Load() {
			return false
		}
	}
	return true
}

// enter registers a Subscribe call; it fails once Close has started.
func (c *Client) enter() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return fmt.Errorf("nats: subscribe: %w", brokers.ErrClosed)
	}
	c.wg.Add(1)
	return nil
}

func (c *Client) track(s *subscription, on bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if on {
		if c.subs == nil {
			c.subs = make(map[*subscription]struct{})
		}
		c.subs[s] = struct{}{}
	} else {
		delete(c.subs, s)
	}
}

// Close stops every subscription (waiting for their in-flight handlers,
// whose deliveries are settled first), then closes the connection after
// flushing what was published. It is idempotent and returns when nats.go
// reported the connection closed.
func (c *Client) Close() error {
	c.closeOne.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cancel()
		c.wg.Wait()
		c.closeConn()
	})
	return nil
}

// closeConn closes the connection and waits (bounded) for nats.go to report
// it closed, when its callback goroutine is done.
func (c *Client) closeConn() {
	c.cancel()
	c.nc.Close()
	t := time.NewTimer(5 * time.Second)
	defer t.Stop()
	select {
	case <-c.libDone:
	case <-t.C:
		c.log.Error("nats: nats.go did not report the connection closed within 5s")
	}
}

// core reports whether subject travels as core NATS: always in core mode,
// and under ReplyPrefix in jetstream mode.
func (c *Client) core(subject string) bool {
	return c.cfg.Mode == ModeCore || strings.HasPrefix(subject, c.cfg.ReplyPrefix)
}
