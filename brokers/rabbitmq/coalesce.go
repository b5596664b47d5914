package rabbitmq

import (
	"net"
	"sync"
	"time"
)

const (
	// maxPending bounds what a coalescingConn buffers: past it Write waits
	// for the socket (a broker under flow control stops reading, and then
	// our writes block).
	maxPending = 1 << 20
	// keepBuffer is the largest buffer a coalescingConn keeps for reuse
	// after a write.
	keepBuffer = 64 << 10
	// closeFlush bounds how long Close waits for the buffer to reach the
	// socket before closing it anyway.
	closeFlush = time.Second
)

// coalescingConn is a net.Conn whose writes reach the socket from one
// goroutine of its own, each syscall carrying everything written while the
// previous one ran.
//
// amqp091-go writes and flushes once per method (a publish, an ack) under
// its connection's send lock, so with many requests in flight every publish
// and every ack is a write syscall of its own, and on loopback the kernel
// does the receiver's TCP work inside that syscall too: a third of the
// gateway's CPU under load was there. Here Write appends to a buffer and
// returns; under load one syscall carries many frames, and alone a frame
// waits only for the writer goroutine to wake (BENCHMARKS.md has both
// figures). A failed write closes the socket, which the library's reader sees
// at once, and the next Write returns the error.
type coalescingConn struct {
	net.Conn

	mu      sync.Mutex
	drained sync.Cond // the buffer shrank, or the conn failed
	buf     []byte
	spare   []byte
	err     error
	closed  bool
	kick    chan struct{} // cap 1: there is something to write, or Close
	done    chan struct{} // closed when the writer goroutine returned
}

func newCoalescingConn(c net.Conn) *coalescingConn {
	cc := &coalescingConn{Conn: c, kick: make(chan struct{}, 1), done: make(chan struct{})}
	cc.drained.L = &cc.mu
	go cc.writer()
	return cc
}

// Write buffers p for the writer goroutine, waiting while maxPending bytes
// are buffered already. It returns the error of an earlier write, if any.
func (c *coalescingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	for c.err == nil && len(c.buf) >= maxPending {
		c.drained.Wait()
	}
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		return 0, err
	}
	c.buf = append(c.buf, p...)
	c.mu.Unlock()
	c.wake()
	return len(p), nil
}

func (c *coalescingConn) wake() {
	select {
	case c.kick <- struct{}{}:
	default:
	}
}

// writer sends the buffer to the socket until the conn is closed and
// drained, or a write fails.
func (c *coalescingConn) writer() {
	defer close(c.done)
	for {
		c.mu.Lock()
		for len(c.buf) == 0 && !c.closed {
			c.mu.Unlock()
			<-c.kick
			c.mu.Lock()
		}
		if len(c.buf) == 0 { // closed and drained
			c.mu.Unlock()
			return
		}
		b := c.buf
		c.buf, c.spare = c.spare[:0], nil
		c.mu.Unlock()

		_, err := c.Conn.Write(b)

		c.mu.Lock()
		if cap(b) <= keepBuffer {
			c.spare = b // else let a burst's buffer go
		}
		if err != nil && c.err == nil {
			c.err = err
		}
		c.drained.Broadcast()
		c.mu.Unlock()
		if err != nil {
			_ = c.Conn.Close()
			return
		}
	}
}

// Close sends what is buffered (for at most closeFlush), then closes the
// socket. Later writes fail with net.ErrClosed.
func (c *coalescingConn) Close() error {
	c.mu.Lock()
	c.closed = true
	c.mu.Unlock()
	c.wake()
	t := time.NewTimer(closeFlush)
	defer t.Stop()
	select {
	case <-c.done:
	case <-t.C: // the peer does not read: closing unblocks the writer
	}
	err := c.Conn.Close()
	<-c.done
	c.mu.Lock()
	if c.err == nil {
		c.err = net.ErrClosed
	}
	c.drained.Broadcast()
	c.mu.Unlock()
	return err
}
