package kafka_test

import (
	"context"
	"fmt"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/kafka"
)

// A request/reply round trip: a service consumes its topic in a consumer
// group and answers on the request's reply-to; the gateway node consumes
// its own reply topic as an inbox and sends requests only once it is ready.
func Example() {
	// An in-process broker stands in for Kafka here (see cmd/kafka-embedded).
	cluster, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "orders"))
	if err != nil {
		panic(err)
	}
	defer cluster.Close()
	cfg := kafka.Config{Brokers: cluster.ListenAddrs()}

	pub, err := kafka.NewPublisher(cfg)
	if err != nil {
		panic(err)
	}
	defer pub.Close()
	sub, err := kafka.NewSubscriber(cfg)
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	// The service.
	serviceReady := make(chan struct{})
	go sub.Subscribe(ctx, "orders", func(ctx context.Context, m brokers.Message) error {
		req, err := envelope.DecodeRequest(m)
		if err != nil {
			return nil // malformed: nothing to answer, nothing to retry
		}
		return pub.Publish(ctx, req.ReplyTo, envelope.Reply{
			CorrelationID: req.CorrelationID, Status: 201, Body: []byte("order accepted"),
		}.Message())
	}, brokers.WithReady(func() { close(serviceReady) }))

	// The gateway node's inbox.
	replies := make(chan envelope.Reply, 1)
	inboxReady := make(chan struct{})
	go sub.Subscribe(ctx, "syncgate.reply.node-1", func(ctx context.Context, m brokers.Message) error {
		r, err := envelope.DecodeReply(m)
		if err != nil {
			return nil // counted and dropped by the gateway
		}
		replies <- r
		return nil
	}, brokers.AsInbox(), brokers.WithReady(func() { close(inboxReady) }))
	<-inboxReady
	<-serviceReady

	req := envelope.Request{
		CorrelationID: "0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f",
		ReplyTo:       "syncgate.reply.node-1",
		Body:          []byte(`{"item":"book"}`),
	}
	if err := pub.Publish(ctx, "orders", req.Message()); err != nil {
		panic(err)
	}
	r := <-replies
	fmt.Println(r.StatusCode(), string(r.Body))
	// Output: 201 order accepted
}
