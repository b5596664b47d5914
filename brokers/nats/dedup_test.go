package nats_test

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/brokers/nats"
)

// In jetstream mode a request published twice with one correlation id
// within the stream's duplicate window (the gateway's outbox publishing
// again after an ack that did not come in time) is stored, and handled,
// once; the handler sees the headers that were published, without the
// Nats-Msg-Id that did it. Another id is not held back, and a Nats-Msg-Id
// of the message's own wins over the correlation id.
func TestJetStreamDeduplicatesRequests(t *testing.T) {
	cfg := testConfig(t, nats.ModeJetStream)
	c := dial(t, cfg)
	a := newAdmin(t)
	dest := unique("sgtest.dedup.")
	got := make(chan brokers.Message, 8)
	subscribe(t, c, dest, collect(got))
	request := func(id string) brokers.Message {
		return envelope.Request{CorrelationID: id, ReplyTo: cfg.ReplyPrefix + "node-1",
			Deadline: time.Now().Add(time.Minute), Body: []byte(id)}.Message()
	}
	first, second := uuid.Must(uuid.NewV7()).String(), uuid.Must(uuid.NewV7()).String()
	publish(t, c, dest, request(first))
	publish(t, c, dest, request(first))
	publish(t, c, dest, request(second))
	own := request(uuid.Must(uuid.NewV7()).String())
	own.Headers["Nats-Msg-Id"] = "own-id"
	publish(t, c, dest, own)
	own.Headers[envelope.CorrelationID] = uuid.Must(uuid.NewV7()).String() // another request, the same own id
	publish(t, c, dest, own)

	for i, want := range []string{first, second, string(own.Body)} {
		m := receive(t, got, "a request")
		if string(m.Body) != want {
			t.Errorf("request %d: body %q, want %q", i, m.Body, want)
		}
		if id, ok := m.Headers["Nats-Msg-Id"]; ok != (i == 2) || ok && id != "own-id" {
			t.Errorf("request %d: Nats-Msg-Id %q (%v), want only the message's own", i, id, ok)
		}
	}
	select {
	case m := <-got:
		t.Errorf("a duplicate was handled: %q %v", m.Body, m.Headers)
	case <-time.After(500 * time.Millisecond):
	}
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	st, err := a.js.Stream(ctx, cfg.StreamName(dest))
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n := info.State.LastSeq; n != 3 {
		t.Errorf("the stream stored %d messages, want 3 of the 5 published", n)
	}
}
