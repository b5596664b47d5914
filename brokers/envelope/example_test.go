package envelope_test

import (
	"errors"
	"fmt"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// The gateway encodes a request; the service decodes it and answers with a
// reply that carries the same correlation id; the gateway validates it.
func Example() {
	req := envelope.Request{
		CorrelationID: "0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f",
		ReplyTo:       "syncgate.replies.node-1",
		Deadline:      time.Date(2026, 11, 23, 20, 16, 30, 250_000_000, time.UTC),
		Method:        "POST",
		Path:          "/orders",
		Body:          []byte(`{"qty":1}`),
	}
	m := req.Message()
	fmt.Println(m.Headers[envelope.Deadline])

	// The service side.
	in, err := envelope.DecodeRequest(m)
	if err != nil {
		fmt.Println(err)
		return
	}
	out := envelope.Reply{
		CorrelationID: in.CorrelationID,
		Status:        201,
		Header:        map[string]string{"Location": "/orders/42"},
	}

	// Back at the gateway.
	rep, err := envelope.DecodeReply(out.Message())
	fmt.Println(rep.StatusCode(), rep.Header["location"], err)

	// A reply that lost its id is rejected, never matched.
	_, err = envelope.DecodeReply(brokers.Message{Headers: map[string]string{envelope.Status: "200"}})
	fmt.Println(errors.Is(err, envelope.ErrNoCorrelationID), err)
	// Output:
	// 2026-11-23T20:16:30.250Z
	// 201 /orders/42 <nil>
	// true envelope: invalid message: no correlation-id
}
