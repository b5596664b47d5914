package rabbitmq

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"
)

// fakeSocket records what is written to it. While gate is set, each Write
// first waits for a value from gate (or for Close, which fails it, as a
// socket nobody reads does).
type fakeSocket struct {
	net.Conn // nil: only Write and Close are used

	gate    chan struct{}
	entered chan struct{} // a Write started (buffered)
	failAt  int           // the failAt-th Write fails (0: none)

	mu     sync.Mutex
	writes [][]byte
	closed chan struct{}
	once   sync.Once
}

func newFakeSocket(gated bool) *fakeSocket {
	s := &fakeSocket{entered: make(chan struct{}, 100), closed: make(chan struct{})}
	if gated {
		s.gate = make(chan struct{})
	}
	return s
}

var errBroken = errors.New("broken pipe")

func (s *fakeSocket) Write(p []byte) (int, error) {
	s.entered <- struct{}{}
	if s.gate != nil {
		select {
		case <-s.gate:
		case <-s.closed:
			return 0, net.ErrClosed
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.writes = append(s.writes, bytes.Clone(p))
	if len(s.writes) == s.failAt {
		return 0, errBroken
	}
	return len(p), nil
}

func (s *fakeSocket) Close() error {
	s.once.Do(func() { close(s.closed) })
	return nil
}

func (s *fakeSocket) got() (n int, all []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.writes), bytes.Join(s.writes, nil)
}

func wait(t *testing.T, ch <-chan struct{}, what string) {
	t.Helper()
	select {
	case <-ch:
	case <-time.After(10 * time.Second):
		t.Fatalf("%s: not within 10s", what)
	}
}

// TestCoalescingConnBatches: what is written while a write is in progress
// goes out in the next one, in order, and nothing is lost.
func TestCoalescingConnBatches(t *testing.T) {
	s := newFakeSocket(true)
	c := newCoalescingConn(s)
	var want bytes.Buffer
	write := func(i int) {
		p := fmt.Appendf(nil, "frame %d;", i)
		want.Write(p)
		if n, err := c.Write(p); n != len(p) || err != nil {
			t.Fatalf("Write = %d, %v", n, err)
		}
	}
	write(0)
	wait(t, s.entered, "first socket write")
	for i := 1; i <= 100; i++ { // while the first one is stuck in the socket
		write(i)
	}
	s.gate <- struct{}{}
	wait(t, s.entered, "second socket write")
	s.gate <- struct{}{}
	close(s.gate) // from here on writes pass
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	n, all := s.got()
	if n != 2 {
		t.Fatalf("%d socket writes, want 2: the first frame, then the 100 written meanwhile", n)
	}
	if !bytes.Equal(all, want.Bytes()) {
		t.Fatalf("socket got %q, want %q", all, want.Bytes())
	}
	if _, err := c.Write([]byte("late")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close = %v, want net.ErrClosed", err)
	}
}

// TestCoalescingConnConcurrentWriters: each writer's frames arrive whole
// and in its order.
func TestCoalescingConnConcurrentWriters(t *testing.T) {
	s := newFakeSocket(false)
	go func() { // drain the entered signals of an ungated socket
		for {
			select {
			case <-s.entered:
			case <-s.closed:
				return
			}
		}
	}()
	c := newCoalescingConn(s)
	const writers, frames = 8, 500
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range frames {
				if _, err := c.Write(fmt.Appendf(nil, "%d:%d;", w, i)); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	_, all := s.got()
	next := make([]int, writers)
	for _, f := range bytes.Split(bytes.TrimSuffix(all, []byte(";")), []byte(";")) {
		var w, i int
		if _, err := fmt.Sscanf(string(f), "%d:%d", &w, &i); err != nil || w < 0 || w >= writers {
			t.Fatalf("torn frame %q", f)
		}
		if i != next[w] {
			t.Fatalf("writer %d: frame %d after %d", w, i, next[w]-1)
		}
		next[w]++
	}
	for w, n := range next {
		if n != frames {
			t.Fatalf("writer %d: %d frames arrived, want %d", w, n, frames)
		}
	}
}

// TestCoalescingConnWriteError: a failed socket write closes the socket
// and is returned by the next Write.
func TestCoalescingConnWriteError(t *testing.T) {
	s := newFakeSocket(false)
	s.failAt = 1
	c := newCoalescingConn(s)
	if _, err := c.Write([]byte("a")); err != nil {
		t.Fatalf("first Write: %v (its failure shows later)", err)
	}
	wait(t, s.closed, "socket closed after the failed write")
	if _, err := c.Write([]byte("b")); !errors.Is(err, errBroken) {
		t.Fatalf("Write after the failure = %v, want %v", err, errBroken)
	}
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
}

// TestCoalescingConnBounded: a socket nobody reads stops Write once
// maxPending bytes wait, and Close does not hang on it.
func TestCoalescingConnBounded(t *testing.T) {
	s := newFakeSocket(true)
	c := newCoalescingConn(s)
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatal(err)
	}
	wait(t, s.entered, "socket write")
	big := make([]byte, maxPending)
	if _, err := c.Write(big); err != nil { // fills the buffer
		t.Fatal(err)
	}
	blocked := make(chan error, 1)
	go func() {
		_, err := c.Write([]byte("y"))
		blocked <- err
	}()
	select {
	case err := <-blocked:
		t.Fatalf("Write returned (%v) with %d bytes waiting", err, maxPending)
	case <-time.After(50 * time.Millisecond):
	}
	start := time.Now()
	if err := c.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if d := time.Since(start); d > closeFlush+5*time.Second {
		t.Fatalf("Close took %s", d)
	}
	if err := <-blocked; !errors.Is(err, net.ErrClosed) {
		t.Fatalf("blocked Write = %v, want net.ErrClosed", err)
	}
}
