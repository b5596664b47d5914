package rabbitmq

import (
	"testing"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers/envelope"
)

// TestDecodeKey: without a key header the key is the correlation id the
// message carries, the header one when another publisher sets a header and
// a different property.
func TestDecodeKey(t *testing.T) {
	for _, tc := range []struct {
		name string
		d    amqp.Delivery
		key  string
	}{
		{"property", amqp.Delivery{CorrelationId: "p"}, "p"},
		{"header wins", amqp.Delivery{CorrelationId: "p", Headers: amqp.Table{envelope.CorrelationID: "h"}}, "h"},
		{"key header", amqp.Delivery{CorrelationId: "p", Headers: amqp.Table{keyHeader: "k"}}, "k"},
		{"empty key header", amqp.Delivery{CorrelationId: "p", Headers: amqp.Table{keyHeader: ""}}, ""},
		{"nothing", amqp.Delivery{}, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			m := decode(tc.d)
			if m.Key != tc.key {
				t.Fatalf("key %q, want %q", m.Key, tc.key)
			}
			if id := m.Headers[envelope.CorrelationID]; tc.key != "" && tc.name != "key header" && id != tc.key {
				t.Fatalf("correlation-id header %q, want %q like the key", id, tc.key)
			}
		})
	}
}
