package brokertest

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// testRoundTrip: a message published after Ready reaches the handler intact.
func (s *suite) testRoundTrip(t *testing.T) {
	pub, sub := s.pair(t)
	dest := s.dest(t)
	got := make(chan brokers.Message, 1)
	s.subscribe(t, sub, dest, collect(got))

	want := message("round-trip", "key-1", []byte("hello, broker"))
	want.Headers["content-type"] = "text/plain; charset=utf-8"
	s.publish(t, pub, dest, want)
	s.checkMessage(t, want, receive(t, s, got, "delivery"))
}

// testPayloads: keys, headers and binary bodies arrive byte-exact.
func (s *suite) testPayloads(t *testing.T) {
	pub, sub := s.pair(t)
	dest := s.dest(t)

	allBytes := make([]byte, 256)
	for i := range allBytes {
		allBytes[i] = byte(i)
	}
	large := make([]byte, 1<<20)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range large {
		large[i] = byte(rng.Uint32())
	}
	manyHeaders := message("many-headers", "key-many-headers", []byte("{}"))
	for i := range 32 {
		manyHeaders.Headers[fmt.Sprintf("x-header-%02d", i)] = strconv.Itoa(i)
	}
	richHeaders := message("rich-headers", "0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f", []byte("x"))
	richHeaders.Headers["content-type"] = "application/json"
	richHeaders.Headers["traceparent"] = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
	richHeaders.Headers["x-unicode"] = "héllo ✓ 世界"
	richHeaders.Headers["x-empty"] = ""
	richHeaders.Headers["x-spaces"] = "  a  b  "
	richHeaders.Headers["x-long"] = strings.Repeat("0123456789abcdef", 256)

	sent := []brokers.Message{
		message("all-bytes", "key-all-bytes", allBytes),
		message("nil-body", "key-nil-body", nil),
		message("empty-body", "key-empty-body", []byte{}),
		message("nul-body", "key-nul-body", []byte{0}),
		message("1MiB-body", "key-1MiB-body", large),
		manyHeaders,
		richHeaders,
	}
	got := make(chan brokers.Message, len(sent))
	s.subscribe(t, sub, dest, collect(got))
	for _, m := range sent {
		s.publish(t, pub, dest, m)
	}
	want := make(map[string]brokers.Message, len(sent))
	for _, m := range sent {
		want[m.Headers[idHeader]] = m
	}
	for range sent {
		m := receive(t, s, got, "delivery")
		id := m.Headers[idHeader]
		w, ok := want[id]
		if !ok {
			t.Fatalf("brokertest: unexpected or duplicate delivery %q", id)
		}
		delete(want, id)
		s.checkMessage(t, w, m)
	}
}

// testEnvelope: a request as the gateway encodes it decodes, on the
// consumer's side, to the same request: the principal header included,
// and a forwarded HTTP header of the same name kept apart from it.
func (s *suite) testEnvelope(t *testing.T) {
	pub, sub := s.pair(t)
	dest := s.dest(t)
	got := make(chan brokers.Message, 1)
	s.subscribe(t, sub, dest, collect(got))

	want := envelope.Request{
		CorrelationID: "0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f", ReplyTo: "replies.node-1",
		Deadline: time.Now().Add(time.Hour).UTC().Truncate(time.Millisecond), ContentType: "application/json",
		Method: "POST", Path: "/pay", Query: "a=1", IdempotencyKey: "k-1",
		Header:    map[string]string{"principal": "mallory", "x-tenant": "t1"},
		Principal: "alice ✓",
		Body:      []byte(`{"amount":10}`),
	}
	s.publish(t, pub, dest, want.Message())
	req, err := envelope.DecodeRequest(receive(t, s, got, "delivery"))
	if err != nil {
		t.Fatalf("brokertest: the request does not decode: %v", err)
	}
	if !reflect.DeepEqual(req, want) {
		t.Errorf("brokertest: envelope round trip:\n got %+v\nwant %+v", req, want)
	}
}

// testPublishCopiesMessage: once Publish returned, the caller may reuse the
// message's body and headers; the consumer sees what was published.
func (s *suite) testPublishCopiesMessage(t *testing.T) {
	pub, sub := s.pair(t)
	dest := s.dest(t)
	got := make(chan brokers.Message, 1)
	s.subscribe(t, sub, dest, collect(got))

	m := message("reused", "key-reused", []byte("original body"))
	m.Headers["x-state"] = "original"
	want := m.Clone()
	s.publish(t, pub, dest, m)
	copy(m.Body, bytes.Repeat([]byte{'#'}, len(m.Body)))
	m.Headers["x-state"] = "changed after Publish"
	m.Headers["x-added"] = "after Publish"
	g := receive(t, s, got, "delivery")
	s.checkMessage(t, want, g)
	if _, ok := g.Headers["x-added"]; ok {
		t.Error("brokertest: a header added after Publish returned reached the consumer")
	}
}

// testOrderPerKey: one subscription with concurrency 1 sees the messages of
// each key in publish order.
func (s *suite) testOrderPerKey(t *testing.T) {
	if s.f.NoOrderPerKey {
		t.Skip("backend declares NoOrderPerKey")
	}
	const keys, perKey = 4, 50
	pub, sub := s.pair(t)
	dest := s.dest(t)
	got := make(chan brokers.Message, keys*perKey)
	s.subscribe(t, sub, dest, collect(got), brokers.WithConcurrency(1))

	for i := range keys * perKey {
		key := fmt.Sprintf("key-%d", i%keys)
		m := message(fmt.Sprintf("%s/%d", key, i/keys), key, []byte(strconv.Itoa(i/keys)))
		s.publish(t, pub, dest, m)
	}
	next := make(map[string]int, keys) // key → the sequence number expected next
	for range keys * perKey {
		m := receive(t, s, got, "delivery")
		id := m.Headers[idHeader]
		key, seq, ok := strings.Cut(id, "/")
		if !ok {
			t.Fatalf("brokertest: unexpected delivery %q", id)
		}
		if want := strconv.Itoa(next[key]); seq != want {
			t.Fatalf("brokertest: key %s: got message %s, want %s (order per key broken or duplicate)", key, seq, want)
		}
		next[key]++
	}
}
