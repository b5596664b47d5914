package rabbitmq_test

import (
	"io"
	"net"
	"net/url"
	"sync"
	"testing"

	"github.com/syncgate/syncgate/internal/testenv"
)

// proxy is a loopback TCP relay to the broker. kill closes it and every
// connection through it, which looks to the client like a broker that went
// away without a word (no connection.close).
type proxy struct {
	ln    net.Listener
	mu    sync.Mutex
	conns []net.Conn
	wg    sync.WaitGroup
	once  sync.Once
}

func newProxy(t testing.TB, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln}
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				_ = c.Close()
				continue
			}
			if !p.track(c, u) {
				return
			}
			p.wg.Add(2)
			go p.pipe(c, u)
			go p.pipe(u, c)
		}
	}()
	t.Cleanup(p.kill)
	return p
}

func (p *proxy) track(c ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.conns == nil && p.ln == nil {
		for _, x := range c {
			_ = x.Close()
		}
		return false
	}
	p.conns = append(p.conns, c...)
	return true
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	_, _ = io.Copy(dst, src)
	_ = dst.Close()
	_ = src.Close()
}

// url returns testenv.RabbitMQURL with its host replaced by the proxy's address.
func (p *proxy) url(t testing.TB) string {
	u, err := url.Parse(testenv.RabbitMQURL())
	if err != nil {
		t.Fatal(err)
	}
	u.Host = p.ln.Addr().String()
	return u.String()
}

func (p *proxy) kill() {
	p.once.Do(func() {
		p.mu.Lock()
		_ = p.ln.Close()
		for _, c := range p.conns {
			_ = c.Close()
		}
		p.conns, p.ln = nil, nil
		p.mu.Unlock()
		p.wg.Wait()
	})
}
