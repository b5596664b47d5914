package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/kafka"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// TestRun: the broker serves the seeded topics to syncgate's Kafka backend,
// and stops when its context ends.
func TestRun(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	started := make(chan string, 1)
	done := make(chan error, 1)
	var out bytes.Buffer
	go func() {
		done <- run(ctx, []string{"-listen", "127.0.0.1:0", "-topics", "orders, payments", "-partitions", "2"}, &out, io.Discard, started)
	}()
	var addr string
	select {
	case addr = <-started:
	case err := <-done:
		t.Fatalf("run returned %v before starting", err)
	case <-time.After(10 * time.Second):
		t.Fatal("broker did not start")
	}

	cfg := kafka.Config{Brokers: []string{addr}}
	pub, err := kafka.NewPublisher(cfg)
	if err != nil {
		t.Fatal(err)
	}
	sub, err := kafka.NewSubscriber(cfg)
	if err != nil {
		t.Fatal(err)
	}
	got := make(chan string, 1)
	sctx, scancel := context.WithCancel(context.Background())
	subDone := make(chan error, 1)
	ready := make(chan struct{})
	go func() {
		subDone <- sub.Subscribe(sctx, "orders", func(ctx context.Context, m brokers.Message) error {
			got <- string(m.Body)
			return nil
		}, brokers.WithReady(func() { close(ready) }))
	}()
	select {
	case <-ready:
	case err := <-subDone:
		t.Fatalf("Subscribe: %v", err)
	case <-time.After(10 * time.Second):
		t.Fatal("subscription not ready")
	}
	pctx, pcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer pcancel()
	if err := pub.Publish(pctx, "orders", brokers.Message{Key: "k", Body: []byte("order-1")}); err != nil {
		t.Fatal(err)
	}
	select {
	case b := <-got:
		if b != "order-1" {
			t.Fatalf("got %q", b)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no delivery")
	}
	scancel()
	if err := <-subDone; err != nil {
		t.Fatal(err)
	}
	_ = sub.Close()
	_ = pub.Close()

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	if s := out.String(); !strings.Contains(s, "listening on "+addr) || !strings.Contains(s, "orders, payments") ||
		!strings.Contains(s, "a restart starts empty") {
		t.Fatalf("output %q", s)
	}
}

func TestRunRejectsNonLoopback(t *testing.T) {
	err := run(context.Background(), []string{"-listen", "0.0.0.0:9092"}, io.Discard, io.Discard, nil)
	if err == nil || !strings.Contains(err.Error(), "127.0.0.1") {
		t.Fatalf("run with a non-loopback address: %v", err)
	}
}
