package node_test

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/brokers/rabbitmq/rabbitmqtest"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// runUntilExit starts a node on cfg and returns Run's error, failing the
// test when Run still runs after limit.
func runUntilExit(t *testing.T, cfg node.Config, limit time.Duration) (time.Duration, error) {
	t.Helper()
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	n, err := node.New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	begin := time.Now()
	errc := make(chan error, 1)
	go func() { errc <- n.Run(t.Context()) }()
	select {
	case err = <-errc:
		return time.Since(begin), err
	case <-time.After(limit):
		t.Fatalf("Run still running %s after start; want it to have stopped", limit)
		return 0, nil
	}
}

// Refused credentials do not heal by themselves: the node stops at once
// (no broker.wait_for needed) with an error naming the user and vhost,
// never the password.
func TestWrongRabbitMQPasswordStops(t *testing.T) {
	rabbitmqtest.Shared(t)
	testenv.RequireRabbitMQ(t)
	const wrong = "wrong-pass-Kx3"
	cfg := rabbitConfig("127.0.0.1:5672")
	cfg.Broker.RabbitMQ.URL = "amqp://guest:" + wrong + "@127.0.0.1:5672/"
	took, err := runUntilExit(t, cfg, 20*time.Second)
	if !errors.Is(err, rabbitmq.ErrAccessRefused) || errors.Is(err, brokers.ErrUnavailable) {
		t.Fatalf("Run = %v, want an error wrapping rabbitmq.ErrAccessRefused", err)
	}
	msg := err.Error()
	if strings.Contains(msg, wrong) {
		t.Errorf("the error shows the password: %s", msg)
	}
	if !strings.Contains(msg, `user "guest"`) || !strings.Contains(msg, `vhost "/"`) {
		t.Errorf("the error does not name the user and the vhost: %s", msg)
	}
	t.Logf("stopped after %v: %v", took, err)
}

// Cluster mode: Redis refusing the password stops the node as well. The
// shared Redis has no password (it accepts any), so a loopback stand-in
// answers every command as a Redis with another password does.
// The node asks Redis before it touches the broker, so no server is needed.
func TestWrongRedisPasswordStops(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { _ = ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.Close()
				buf := make([]byte, 4096)
				for {
					if _, err := c.Read(buf); err != nil {
						return
					}
					if _, err := io.WriteString(c, "-WRONGPASS invalid username-password pair or user is disabled.\r\n"); err != nil {
						return
					}
				}
			}()
		}
	}()
	const wrong = "wrong-redis-pass-Jm8"
	addr := ln.Addr().String()
	cfg := clusterConfig(t, addr)
	cfg.Broker = rabbitConfig("127.0.0.1:5672").Broker
	cfg.Cluster.Redis.Password = wrong
	took, err := runUntilExit(t, cfg, 20*time.Second)
	if err == nil {
		t.Fatal("Run = nil, want an error")
	}
	msg := err.Error()
	if strings.Contains(msg, wrong) {
		t.Errorf("the error shows the password: %s", msg)
	}
	if !strings.Contains(msg, addr) || !strings.Contains(msg, "cluster.redis.password") {
		t.Errorf("the error does not name Redis at %s and cluster.redis.password: %s", addr, msg)
	}
	t.Logf("stopped after %v: %v", took, err)
}
