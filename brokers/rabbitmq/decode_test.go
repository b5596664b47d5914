package rabbitmq

import (
	"maps"
	"math"
	"slices"
	"testing"
	"time"

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
			m, _ := decode(tc.d)
			if m.Key != tc.key {
				t.Fatalf("key %q, want %q", m.Key, tc.key)
			}
			if id := m.Headers[envelope.CorrelationID]; tc.key != "" && tc.name != "key header" && id != tc.key {
				t.Fatalf("correlation-id header %q, want %q like the key", id, tc.key)
			}
		})
	}
}

// TestDecodeTypedHeaders (issue 13, point 6): services in other languages
// send typed header values (amqplib: {status: 201} is an integer); each has
// one string form, an AMQP array is one header with its values joined by a
// line feed, and what has no string form is left out and reported.
func TestDecodeTypedHeaders(t *testing.T) {
	stamp := time.Date(2026, 11, 23, 20, 15, 4, 0, time.FixedZone("CET", 3600))
	for _, tc := range []struct {
		name  string
		value any
		want  string
		bad   bool
	}{
		{"string", "201", "201", false},
		{"empty string", "", "", false},
		{"bytes", []byte("abc"), "abc", false},
		{"int8", int8(-5), "-5", false},
		{"uint8", uint8(201), "201", false},
		{"int16", int16(201), "201", false},
		{"uint16", uint16(201), "201", false},
		{"int32", int32(201), "201", false},
		{"uint32", uint32(201), "201", false},
		{"int64", int64(201), "201", false},
		{"uint64", uint64(math.MaxUint64), "18446744073709551615", false},
		{"int", 201, "201", false},
		{"uint", uint(201), "201", false},
		{"whole float64", float64(201), "201", false},
		{"whole float32", float32(201), "201", false},
		{"fractional float64", 1.5, "1.5", false},
		{"fractional float32", float32(1.1), "1.1", false},
		{"decimal", amqp.Decimal{Scale: 2, Value: 12345}, "123.45", false},
		{"small negative decimal", amqp.Decimal{Scale: 3, Value: -5}, "-0.005", false},
		{"decimal without scale", amqp.Decimal{Value: 201}, "201", false},
		{"true", true, "true", false},
		{"false", false, "false", false},
		{"timestamp", stamp, "Mon, 23 Nov 2026 19:15:04 GMT", false},
		{"array", []any{"a=1", int32(2), true}, "a=1\n2\ntrue", false},
		{"empty array", []any{}, "", false},
		{"NaN", math.NaN(), "", true},
		{"infinity", math.Inf(1), "", true},
		{"table", amqp.Table{"a": "b"}, "", true},
		{"array of arrays", []any{[]any{"a"}}, "", true},
		{"array with a table", []any{"a", amqp.Table{}}, "", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d := amqp.Delivery{CorrelationId: "c", Headers: amqp.Table{"h": tc.value, "status": "204"}}
			m, bad := decode(d)
			if m.Headers["status"] != "204" || m.Headers[envelope.CorrelationID] != "c" {
				t.Errorf("other headers %v, want status 204 and the correlation id kept", m.Headers)
			}
			if tc.bad {
				if _, kept := m.Headers["h"]; kept || !slices.Equal(bad, []string{"h"}) {
					t.Fatalf("header %q kept=%v, reported %v; want it left out and reported", m.Headers["h"], kept, bad)
				}
				return
			}
			want := tc.want
			if got, ok := m.Headers["h"]; !ok || got != want || len(bad) != 0 {
				t.Fatalf("header = %q (present %v), reported %v; want %q", got, ok, bad, want)
			}
		})
	}
}

// TestDecodeLeavesOutBrokerHeaders: headers the broker and this package add
// are not the message's, even now that integers and arrays have string
// forms; void is no value.
func TestDecodeLeavesOutBrokerHeaders(t *testing.T) {
	d := amqp.Delivery{CorrelationId: "c", Headers: amqp.Table{
		"x-death":                   []any{amqp.Table{"reason": "rejected"}},
		"x-delivery-count":          int64(3),
		"x-first-death-reason":      "rejected",
		"x-last-death-queue":        "q",
		attemptHeader:               int64(2),
		"CC":                        []any{"other"},
		"BCC":                       []any{"other"},
		"void":                      nil,
		envelope.HeaderPrefix + "x": "kept",
	}}
	m, bad := decode(d)
	want := map[string]string{envelope.CorrelationID: "c", envelope.HeaderPrefix + "x": "kept"}
	if !maps.Equal(m.Headers, want) || len(bad) != 0 {
		t.Fatalf("headers %v, reported %v; want %v and nothing reported", m.Headers, bad, want)
	}
}
