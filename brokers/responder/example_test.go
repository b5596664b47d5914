package responder_test

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/memory"
	"github.com/syncgate/syncgate/brokers/responder"
)

// A service is one function. Here it upper-cases the body; the example then
// plays the gateway: it publishes one request and reads the reply.
func ExampleService_Serve() {
	b := memory.New(memory.Config{})
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	upper := func(_ context.Context, req responder.Request) (responder.Reply, error) {
		return responder.Reply{ContentType: "text/plain", Body: []byte(strings.ToUpper(string(req.Body)))}, nil
	}
	svc := &responder.Service{Subscriber: b, Publisher: b}
	ready := make(chan struct{})
	go func() { _ = svc.Serve(ctx, "upper", upper, brokers.WithReady(func() { close(ready) })) }()

	replies := make(chan envelope.Reply, 1)
	go func() {
		_ = b.Subscribe(ctx, "replies.example", func(_ context.Context, m brokers.Message) error {
			rep, err := envelope.DecodeReply(m)
			if err == nil {
				replies <- rep
			}
			return nil
		})
	}()
	<-ready
	req := envelope.Request{
		CorrelationID: uuid.NewString(), ReplyTo: "replies.example",
		Deadline: time.Now().Add(time.Minute), Body: []byte("hello"),
	}
	if err := b.Publish(ctx, "upper", req.Message()); err != nil {
		fmt.Println(err)
		return
	}
	rep := <-replies
	fmt.Println(rep.StatusCode(), rep.ContentType, string(rep.Body), rep.CorrelationID == req.CorrelationID)
	// Output: 200 text/plain HELLO true
}
