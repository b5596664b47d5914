package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
)

// Client is one RabbitMQ endpoint of syncgate: it implements both
// brokers.Publisher and brokers.Subscriber. Publishing uses one connection
// with one confirm-mode channel; every Subscribe call gets a connection of its
// own, so a consumer's recovery never disturbs publishing or another
// consumer. Client is safe for concurrent use.
//
// Each of the four locks guards one concern (see the fields) and none is
// held while another of them is taken; they nest only into locks that take
// nothing further (gateMu into a stateWatch's, subsMu into a
// subscription's, in Ready). They stay separate on purpose: gateMu
// and retMu are taken on every publish, rpcMu across a network round trip,
// subsMu by Subscribe and Ready; one lock would make a publish wait for a
// consume RPC. The two WaitGroups are waited for at different points of
// Close: subsWG before the publishing connection closes (a classic-queue
// subscription republishes on it while it stops), bg after (watchReturns
// ends only when that connection's channel is closed).
type Client struct {
	cfg Config
	log *slog.Logger
	id  string // prefix of message ids, unique per Client

	ctx    context.Context // ends when Close starts
	cancel context.CancelFunc

	conn   *amqp.Connection
	ch     *amqp.Channel
	connW  *stateWatch
	chanW  *stateWatch
	bg     sync.WaitGroup // watchGate and watchReturns
	subsWG sync.WaitGroup // running Subscribe calls
	subsMu sync.Mutex     // guards closed and subs; orders subsWG.Add against Close
	closed bool
	subs   map[*subscription]struct{}

	gateMu   sync.Mutex // guards connW and chanW while Dial sets them, up, down, needConn, needChan
	up       bool
	down     chan struct{} // closed when up turns false
	needConn uint64        // connection opens that must be seen before up
	needChan uint64        // channel opens that must be seen before up

	seq      atomic.Uint64
	retMu    sync.Mutex      // guards returned
	returned map[string]bool // message id -> returned as unroutable
	barrier  chan struct{}   // see awaitReturns
	retDone  chan struct{}

	rpcMu sync.Mutex // serializes synchronous calls on ch (publishes are not calls); held across the round trip
	// exchanges holds the exchanges Publish has seen to exist (checkExchange).
	exchanges sync.Map
	probeMu   sync.Mutex       // guards probe
	probe     *amqp.Connection // checkExchange's own connection, dialled on first use
	direct    directInbox

	closeOnce sync.Once
	closeErr  error
}

var clientSeq atomic.Uint64

// ErrAccessRefused is wrapped by Dial's error when the broker refused the
// URL's user name and password (or the user's access to the vhost): 403
// ACCESS_REFUSED during the handshake. Unlike an unreachable broker it does
// not wrap brokers.ErrUnavailable: retrying the same credentials does not
// help.
var ErrAccessRefused = errors.New("rabbitmq: access refused")

// accessRefused returns the error Dial reports for a refused login, naming
// the user and the vhost but never the password, or nil when err is not one.
func accessRefused(url string, err error) error {
	var ae *amqp.Error
	if !errors.As(err, &ae) || ae.Code != amqp.AccessRefused {
		return nil
	}
	user, vhost := "", "/"
	if u, perr := amqp.ParseURI(url); perr == nil {
		user, vhost = u.Username, u.Vhost
	}
	return fmt.Errorf("%w for user %q on vhost %q at %s (%s): check the user name and password in the URL, and the user's permissions on the vhost",
		ErrAccessRefused, user, vhost, redact(url), ae.Reason)
}

// Dial validates cfg (after SetDefaults), connects the publishing connection
// and declares the configured exchange. An unreachable broker is reported at
// once as an error wrapping brokers.ErrUnavailable, refused credentials as
// one wrapping ErrAccessRefused (and not ErrUnavailable); after that first
// connection, losses are recovered by amqp091-go (see the package doc).
func Dial(cfg Config) (*Client, error) {
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	c := &Client{
		cfg:      cfg,
		log:      log.With("component", "rabbitmq"),
		id:       strconv.FormatInt(time.Now().UnixNano(), 36) + "." + strconv.FormatUint(clientSeq.Add(1), 36),
		down:     make(chan struct{}),
		returned: make(map[string]bool),
		barrier:  make(chan struct{}),
		retDone:  make(chan struct{}),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	hook := &recoveryHook{onDown: c.lost, log: c.log}
	conn, err := amqp.DialConfig(cfg.URL, cfg.amqpConfig("publisher", amqp.TopologyRecoveryAllEnabled, hook))
	if err != nil {
		c.cancel()
		if refused := accessRefused(cfg.URL, err); refused != nil {
			return nil, refused
		}
		return nil, fmt.Errorf("%w: rabbitmq: dial %s: %v", brokers.ErrUnavailable, redact(cfg.URL), err)
	}
	c.conn = conn
	if c.ch, err = conn.Channel(); err != nil {
		_ = conn.Close()
		c.cancel()
		return nil, fmt.Errorf("%w: rabbitmq: open channel: %v", brokers.ErrUnavailable, err)
	}
	c.gateMu.Lock()
	c.connW = watchState(conn.NotifyStateChange)
	c.chanW = watchState(c.ch.NotifyStateChange)
	c.gateMu.Unlock()
	fail := func(what string, err error) (*Client, error) {
		_ = closeConn(conn, c.connW, c.ch, c.cfg.ReconnectInterval/2)
		c.awaitLibrary(c.connW, c.chanW)
		c.cancel()
		return nil, fmt.Errorf("%w: rabbitmq: %s: %w", brokers.ErrUnavailable, what, err)
	}
	if err = c.ch.Confirm(false); err != nil {
		return fail("enable publisher confirms", err)
	}
	if cfg.Exchange != "" {
		if err = c.ch.ExchangeDeclare(cfg.Exchange, amqp.ExchangeDirect, true, false, false, false, nil); err != nil {
			return fail("declare exchange "+cfg.Exchange, err)
		}
	}
	returns := c.ch.NotifyReturn(make(chan amqp.Return))
	c.gateMu.Lock()
	c.up = c.needConn == 0
	c.gateMu.Unlock()
	c.bg.Add(2)
	go c.watchReturns(returns)
	go c.watchGate()
	return c, nil
}

// watchGate keeps c.up equal to "connection and channel open". The recovery
// hook turns it off synchronously on a loss; this goroutine turns it back on
// when amqp091-go reports both reopened.
func (c *Client) watchGate() {
	defer c.bg.Done()
	for {
		cs, hs := c.connW.state(), c.chanW.state()
		c.setUp(cs, hs)
		if cs.closed && hs.closed {
			return
		}
		select {
		case <-cs.changed:
		case <-hs.changed:
		case <-c.ctx.Done():
			return
		}
	}
}

// lost is the recovery hook: down now, and up again only after the reopen
// that follows this loss.
func (c *Client) lost() {
	c.gateMu.Lock()
	c.needConn, c.needChan = 1, 1 // a loss before the watchers started
	if c.connW != nil {
		c.needConn = c.connW.opened() + 1
		c.needChan = c.chanW.opened() + 1
	}
	c.gateMu.Unlock()
	// A publish to an exchange deleted since it was checked closes the
	// channel: check every exchange again after the recovery.
	c.exchanges.Clear()
	c.setDown()
}

func (c *Client) setUp(cs, hs lifecycle) {
	c.gateMu.Lock()
	defer c.gateMu.Unlock()
	up := cs.open && hs.open && cs.opens >= c.needConn && hs.opens >= c.needChan
	switch {
	case up && !c.up && c.ctx.Err() == nil:
		c.up = true
		c.down = make(chan struct{})
	case !up && c.up:
		c.up = false
		close(c.down)
	}
}

func (c *Client) setDown() {
	c.gateMu.Lock()
	defer c.gateMu.Unlock()
	if c.up {
		c.up = false
		close(c.down)
	}
}

// gate returns a channel closed when the publishing connection goes down, or
// false when it is down now.
func (c *Client) gate() (<-chan struct{}, bool) {
	c.gateMu.Lock()
	defer c.gateMu.Unlock()
	return c.down, c.up
}

// Ready reports whether the Client can publish and every running
// subscription is consuming (for /readyz). It turns false during an outage
// and true again after the recovery, unlike the one-time WithReady callback.
func (c *Client) Ready() bool {
	if _, up := c.gate(); !up {
		return false
	}
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	for s := range c.subs {
		if !s.consuming() {
			return false
		}
	}
	return true
}

func (c *Client) track(s *subscription, on bool) {
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	if on {
		if c.subs == nil {
			c.subs = make(map[*subscription]struct{})
		}
		c.subs[s] = struct{}{}
	} else {
		delete(c.subs, s)
	}
}

// enter registers a Subscribe call; it fails once Close has started.
func (c *Client) enter() error {
	c.subsMu.Lock()
	defer c.subsMu.Unlock()
	if c.closed {
		return fmt.Errorf("rabbitmq: subscribe: %w", brokers.ErrClosed)
	}
	c.subsWG.Add(1)
	return nil
}

// Close stops every subscription (waiting for their in-flight handlers),
// then closes the publishing connection. Publishes waiting for a confirm
// return ErrClosed. It is idempotent and returns when every goroutine of the
// Client has exited.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		c.subsMu.Lock()
		c.closed = true
		c.subsMu.Unlock()
		c.cancel()
		c.subsWG.Wait()
		c.setDown()
		c.closeProbe()
		if err := closeConn(c.conn, c.connW, c.ch, c.cfg.ReconnectInterval/2); err != nil && !errors.Is(err, amqp.ErrClosed) {
			c.closeErr = fmt.Errorf("rabbitmq: close: %w", err)
		}
		c.awaitLibrary(c.connW, c.chanW)
		c.bg.Wait()
	})
	return c.closeErr
}

// awaitLibrary waits until amqp091-go reported the connection and channel
// closed, which is when its goroutines for them have ended. The wait is
// bounded, in case closeConn could not avoid the library's close race; the
// leak is then logged instead of hanging Close.
func (c *Client) awaitLibrary(ws ...*stateWatch) {
	t := time.NewTimer(c.cfg.DialTimeout + c.cfg.ReconnectInterval + 2*time.Second)
	defer t.Stop()
	for _, w := range ws {
		select {
		case <-w.done:
		case <-t.C:
			c.log.Error("rabbitmq: amqp091-go did not finish closing a connection; its goroutines are left behind")
			return
		}
	}
}

// redact hides the password of an AMQP URL for error messages.
func redact(url string) string {
	u, err := amqp.ParseURI(url)
	if err != nil {
		return "(invalid url)"
	}
	u.Password = "xxxxx"
	return u.String()
}
