package rabbitmq

import (
	"log/slog"
	"net"
	"sync"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
)

// stateWatch follows the lifecycle of one amqp091-go connection or channel
// through NotifyStateChange. The library sends every transition on its own
// goroutine and closes the listener after StateClosed, so the watch goroutine
// must keep reading until then; done is closed when it has.
type stateWatch struct {
	mu      sync.Mutex
	open    bool
	opens   uint64 // StateOpen transitions seen (recoveries)
	closed  bool   // StateClosed seen: recovery gave up or Close was called
	err     error  // the error of the StateClosed transition, if any
	changed chan struct{}
	done    chan struct{}
}

// lifecycle is a snapshot of a stateWatch.
type lifecycle struct {
	open, closed bool
	opens        uint64
	changed      <-chan struct{} // closed at the next transition
	err          error
}

// watchState registers a listener; the object is open when registered.
func watchState(register func(chan *amqp.StateChanged)) *stateWatch {
	w := &stateWatch{open: true, changed: make(chan struct{}), done: make(chan struct{})}
	events := make(chan *amqp.StateChanged, 8)
	register(events)
	go w.run(events)
	return w
}

func (w *stateWatch) run(events <-chan *amqp.StateChanged) {
	defer close(w.done)
	for ev := range events {
		w.set(ev.To == amqp.StateOpen, ev.To == amqp.StateClosed, ev.Err)
	}
	w.set(false, true, nil)
}

func (w *stateWatch) set(open, closed bool, err error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if open && !w.open {
		w.opens++
	}
	w.open = open
	if closed && !w.closed {
		w.closed, w.err = true, err
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *stateWatch) state() lifecycle {
	w.mu.Lock()
	defer w.mu.Unlock()
	return lifecycle{open: w.open, closed: w.closed, opens: w.opens, changed: w.changed, err: w.err}
}

// opened returns the number of StateOpen transitions seen so far. A loss is
// followed by exactly one more once its recovery succeeded, which is how a
// recovery hook's caller knows the reopen it waits for has happened: the
// open flag alone may still show the state from before the loss, since the
// library reports transitions asynchronously.
func (w *stateWatch) opened() uint64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.opens
}

// recoveryHook runs before amqp091-go's default recovery, on the library's
// watcher goroutine, synchronously: the callbacks run before the connection
// or channel is reopened. That ordering is what lets a subscription retire its
// consumer (and refuse acks with stale delivery tags) and lets the publisher
// fail pending publishes at once, without racing the reconnection.
//
// A channel exception (the broker closing one channel with a soft error on a
// live connection) is escalated to a connection reset instead of the
// library's channel recovery: that reopens the channel at once under the same
// channel number, and RabbitMQ (3.10) may silently drop a channel.open that
// arrives while it is still tearing the old channel down; the library then
// waits for channel.open-ok forever (observed with RabbitMQ 3.10.8 and
// amqp091-go v1.16.0: a refused queue declaration left the subscription
// stuck in about one run in five). Closing the socket hands the whole
// connection to the library's connection recovery, which reopens every
// channel on a fresh connection.
type recoveryHook struct {
	amqp.DefaultConnectionRecovery
	onDown func()
	log    *slog.Logger
	sock   socket
}

func (h *recoveryHook) OnConnectionClose(conn *amqp.Connection, err *amqp.Error) {
	h.onDown()
	h.DefaultConnectionRecovery.OnConnectionClose(conn, err)
}

func (h *recoveryHook) OnChannelClose(ch *amqp.Channel, err *amqp.Error) {
	h.onDown()
	if err != nil && err.Recover {
		// A soft error: the connection is up and only this channel closed.
		h.log.Warn("rabbitmq: channel closed by the broker; resetting its connection", slog.Any("error", err))
		h.sock.reset()
	}
	// Otherwise the connection is down and its recovery reopens the channel.
}

// socket remembers the latest TCP connection the library dialled, so that
// the hook can reset it.
type socket struct {
	mu   sync.Mutex
	conn net.Conn
}

// dial wraps amqp.DefaultDial for Config.Dial (used by recovery too): the
// library gets the connection through a coalescingConn; reset closes the
// socket itself, at once.
func (s *socket) dial(timeout time.Duration) func(network, addr string) (net.Conn, error) {
	d := amqp.DefaultDial(timeout)
	return func(network, addr string) (net.Conn, error) {
		c, err := d(network, addr)
		if err != nil {
			return nil, err
		}
		s.mu.Lock()
		s.conn = c
		s.mu.Unlock()
		return newCoalescingConn(c), nil
	}
}

func (s *socket) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		_ = s.conn.Close()
	}
}

// closeConn closes conn, first waiting (at most about 5s) for a state in
// which amqp091-go v1.16.0 finishes the close. It does not when Close lands
//   - after a loss but before the recovery started: Close sees the
//     connection closed and returns, and the recovery, seeing the close
//     intent, skips the cleanup that ends its goroutines and listeners;
//   - just after the recovery started (lifecycle Reconnecting) and before
//     its retry loop: the loop then runs zero times and Reconnect returns
//     nil, so again nobody cleans up;
//   - while a channel closed by a channel exception waits for recovery: the
//     connection's Close skips it. The recovery hook turns that state into a
//     connection loss at once.
//
// Safe are: connection and channel open, or a recovery that has been
// running for settle (inside its first wait of ReconnectInterval): Close
// then cancels it and its cleanup closes everything. No library signal marks
// that point, hence the time-based settle; the window it avoids is
// microseconds wide and settle is half the interval the library waits.
func closeConn(conn *amqp.Connection, connW *stateWatch, ch *amqp.Channel, settle time.Duration) error {
	deadline := time.Now().Add(5 * time.Second)
	var recovering time.Time
	for time.Now().Before(deadline) {
		st := connW.state()
		if st.closed {
			break
		}
		if !conn.IsClosed() {
			recovering = time.Time{}
			if !ch.IsClosed() {
				break // open: safe
			}
		} else if !st.open {
			if recovering.IsZero() {
				recovering = time.Now()
			} else if time.Since(recovering) >= settle {
				break // inside the recovery's backoff: safe
			}
		}
		t := time.NewTimer(20 * time.Millisecond)
		select {
		case <-st.changed:
		case <-t.C:
		}
		t.Stop()
	}
	return conn.Close()
}
