package nats_test

import (
	"context"
	"fmt"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/nats"
)

// A service answers requests published to its subject; a gateway node
// publishes a request and receives the reply on its inbox subject. Both
// sides are one Client each (it is a Publisher and a Subscriber). With
// Mode jetstream the request waits in a stream until the service takes
// it; the reply, under ReplyPrefix, stays core NATS.
func Example() {
	cfg := nats.Config{URL: "nats://127.0.0.1:4222", Mode: nats.ModeJetStream}
	svc, err := nats.Dial(cfg)
	if err != nil {
		fmt.Println("service:", err)
		return
	}
	defer svc.Close()
	gw, err := nats.Dial(cfg)
	if err != nil {
		fmt.Println("gateway:", err)
		return
	}
	defer gw.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	serving, listening := make(chan struct{}), make(chan struct{})
	go svc.Subscribe(ctx, "example.greet", func(ctx context.Context, m brokers.Message) error {
		req, err := envelope.DecodeRequest(m)
		if err != nil {
			return nil // nobody to answer
		}
		rep := envelope.Reply{CorrelationID: req.CorrelationID, Body: append([]byte("hello, "), req.Body...)}
		return svc.Publish(ctx, req.ReplyTo, rep.Message())
	}, brokers.WithReady(func() { close(serving) }))

	replies := make(chan envelope.Reply, 1)
	go gw.Subscribe(ctx, "syncgate.reply.example", func(_ context.Context, m brokers.Message) error {
		if r, err := envelope.DecodeReply(m); err == nil {
			replies <- r
		}
		return nil
	}, brokers.AsInbox(), brokers.WithReady(func() { close(listening) }))
	<-serving
	<-listening

	req := envelope.Request{
		CorrelationID: "0190a9b2-7c4d-7e8f-9a0b-1c2d3e4f5a6b",
		ReplyTo:       "syncgate.reply.example",
		Deadline:      time.Now().Add(5 * time.Second),
		Body:          []byte("world"),
	}
	if err := gw.Publish(ctx, "example.greet", req.Message()); err != nil {
		fmt.Println("publish:", err)
		return
	}
	select {
	case r := <-replies:
		fmt.Println(r.StatusCode(), string(r.Body))
	case <-ctx.Done():
		fmt.Println("no reply")
	}
}
