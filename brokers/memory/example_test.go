package memory_test

import (
	"context"
	"fmt"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/memory"
)

func Example() {
	b := memory.New(memory.Config{})
	defer b.Close()
	ctx, cancel := context.WithCancel(context.Background())

	got := make(chan brokers.Message, 1)
	ready := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- b.Subscribe(ctx, "greetings", func(_ context.Context, m brokers.Message) error {
			got <- m
			return nil // acknowledged
		}, brokers.WithReady(func() { close(ready) }))
	}()
	<-ready

	err := b.Publish(ctx, "greetings", brokers.Message{
		Key:     "0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f",
		Headers: map[string]string{"content-type": "text/plain"},
		Body:    []byte("hello"),
	})
	if err != nil {
		fmt.Println("publish:", err)
	}
	m := <-got
	fmt.Println(m.Headers["content-type"], string(m.Body))

	cancel()
	fmt.Println("subscribe:", <-done)
	// Output:
	// text/plain hello
	// subscribe: <nil>
}
