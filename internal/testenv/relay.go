package testenv

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"
)

// Relay is a loopback TCP relay to a server, for outage tests of its
// clients: Kill closes it and every connection through it (to the client,
// a server that went away without a word), Drop closes the connections
// but keeps listening (a server that restarted). It is killed when the
// test ends.
type Relay struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
	once  sync.Once
}

// NewRelay relays to the server of serverURL (its host:port).
func NewRelay(t testing.TB, serverURL string) *Relay {
	t.Helper()
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	target := u.Host
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &Relay{ln: ln}
	r.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			if !r.track(c, s) {
				return
			}
			r.wg.Go(func() { pipe(c, s) })
			r.wg.Go(func() { pipe(s, c) })
		}
	})
	t.Cleanup(r.Kill)
	return r
}

// URL returns serverURL with its host replaced by the relay's address.
func (r *Relay) URL(t testing.TB, serverURL string) string {
	t.Helper()
	u, err := url.Parse(serverURL)
	if err != nil {
		t.Fatal(err)
	}
	u.Host = r.ln.Addr().String()
	return u.String()
}

func (r *Relay) track(c ...net.Conn) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.ln == nil { // killed
		for _, x := range c {
			_ = x.Close()
		}
		return false
	}
	r.conns = append(r.conns, c...)
	return true
}

func pipe(dst, src net.Conn) {
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// Drop closes every connection through the relay and keeps listening.
func (r *Relay) Drop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		_ = c.Close()
	}
	r.conns = nil
}

// Kill closes the relay and every connection through it, and returns once
// its goroutines ended.
func (r *Relay) Kill() {
	r.once.Do(func() {
		r.mu.Lock()
		_ = r.ln.Close()
		for _, c := range r.conns {
			_ = c.Close()
		}
		r.conns, r.ln = nil, nil
		r.mu.Unlock()
		r.wg.Wait()
	})
}
