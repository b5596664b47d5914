package rabbitmq

import (
	"hash/maphash"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// decode maps a delivery back to a message. AMQP header values become
// strings (see headerValue): services in other languages send typed values
// (amqplib sends {status: 201} as an integer), and an AMQP array is one
// header whose values, in order, are joined by a line feed (the contract of
// brokers.Message). Headers the broker and this package add (x-death,
// x-delivery-count, x-first-death-*, x-last-death-*, the attempt and key
// headers, CC and BCC) are not passed on. The properties correlation_id,
// content_type and reply_to fill the envelope headers of the same names
// (publishing sends them only as properties; a header sent by another
// publisher wins). A direct reply-to address (which the broker rewrites)
// replaces the reply-to header. The key is keyHeader, or the correlation id
// without it.
//
// It returns, sorted, the names of the headers whose values have no string
// form (a nested table, an array of arrays, NaN): those are left out of the
// message, and the caller reports them.
func decode(d amqp.Delivery) (m brokers.Message, unconvertible []string) {
	if len(d.Body) > 0 {
		m.Body = d.Body
	}
	h := make(map[string]string, len(d.Headers)+3)
	keyed := false
	for k, v := range d.Headers {
		switch {
		case k == keyHeader:
			m.Key, _ = v.(string)
			keyed = true
			continue
		case brokerHeader(k):
			continue
		}
		s, ok := headerValue(v)
		switch {
		case !ok:
			unconvertible = append(unconvertible, k)
		case v == nil:
			// AMQP void: amqplib's null or undefined, no value at all.
		default:
			h[k] = s
		}
	}
	slices.Sort(unconvertible)
	fill := func(k, v string) {
		if _, ok := h[k]; !ok && v != "" {
			h[k] = v
		}
	}
	fill(envelope.CorrelationID, d.CorrelationId)
	fill(envelope.ContentType, d.ContentType)
	fill(envelope.ReplyTo, d.ReplyTo)
	if strings.HasPrefix(d.ReplyTo, directReplyTo) {
		h[envelope.ReplyTo] = d.ReplyTo
	}
	if !keyed {
		m.Key = h[envelope.CorrelationID]
	}
	if len(h) > 0 {
		m.Headers = h
	}
	return m, unconvertible
}

// decode is decode that logs the headers left out, with the message's
// correlation id: a reply whose status arrived as a nested table is then
// answered 200 by the gateway, and this line says why.
func (s *subscription) decode(d amqp.Delivery) brokers.Message { return decodeLogged(s.log, d) }

func decodeLogged(log *slog.Logger, d amqp.Delivery) brokers.Message {
	m, bad := decode(d)
	if len(bad) > 0 {
		log.Warn("rabbitmq: headers without a string form left out of the message",
			slog.String("correlation_id", m.Headers[envelope.CorrelationID]), slog.Any("headers", bad))
	}
	return m
}

// brokerHeader reports whether k is a header the broker or this package
// adds, not one of the message's own.
func brokerHeader(k string) bool {
	switch k {
	case "x-death", deliveryCountHeader, attemptHeader, "CC", "BCC":
		return true
	}
	return strings.HasPrefix(k, "x-first-death-") || strings.HasPrefix(k, "x-last-death-")
}

// headerValue is the string form of an AMQP field value: strings and byte
// arrays as they are; integers of every width, and floats, in decimal
// (whole floats without a fraction: 201.0 is "201"); decimals with their
// scale; booleans as true or false; timestamps as an HTTP date
// (IMF-fixdate, UTC); arrays of those as their values joined by "\n"; void
// as "". ok is false for the rest (tables, nested arrays, NaN, infinities).
func headerValue(v any) (s string, ok bool) {
	if a, isArray := v.([]any); isArray {
		vals := make([]string, 0, len(a))
		for _, e := range a {
			s, ok := scalarValue(e)
			if !ok {
				return "", false
			}
			vals = append(vals, s)
		}
		return strings.Join(vals, "\n"), true
	}
	return scalarValue(v)
}

func scalarValue(v any) (string, bool) {
	if n, ok := integer(v); ok {
		return strconv.FormatInt(n, 10), true
	}
	switch v := v.(type) {
	case nil:
		return "", true
	case string:
		return v, true
	case []byte:
		return string(v), true
	case bool:
		return strconv.FormatBool(v), true
	case uint64:
		return strconv.FormatUint(v, 10), true
	case uint:
		return strconv.FormatUint(uint64(v), 10), true
	case float32:
		return float(float64(v), 32)
	case float64:
		return float(v, 64)
	case amqp.Decimal:
		return decimal(v), true
	case time.Time:
		return v.UTC().Format(http.TimeFormat), true
	}
	return "", false
}

// integer returns v as an int64 when it is a signed integer, or an
// unsigned one that fits.
func integer(v any) (int64, bool) {
	switch v := v.(type) {
	case int:
		return int64(v), true
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint64:
		if v <= math.MaxInt64 {
			return int64(v), true
		}
	case uint:
		if uint64(v) <= math.MaxInt64 {
			return int64(v), true
		}
	}
	return 0, false
}

func float(f float64, bits int) (string, bool) {
	if math.IsNaN(f) || math.IsInf(f, 0) {
		return "", false
	}
	return strconv.FormatFloat(f, 'f', -1, bits), true
}

// decimal formats an AMQP decimal (Value * 10^-Scale) without rounding.
func decimal(d amqp.Decimal) string {
	digits := strconv.FormatInt(int64(d.Value), 10)
	sign := ""
	if d.Value < 0 {
		sign, digits = "-", digits[1:]
	}
	scale := int(d.Scale)
	if scale == 0 {
		return sign + digits
	}
	if len(digits) <= scale {
		digits = strings.Repeat("0", scale-len(digits)+1) + digits
	}
	return sign + digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
}

// correlationKey is the correlation id decode reads from d: its header,
// which wins, or its property. Reply inboxes hash it to pick a lane.
func correlationKey(d amqp.Delivery) string {
	if v, ok := d.Headers[envelope.CorrelationID]; ok && v != nil {
		if s, ok := headerValue(v); ok {
			return s
		}
	}
	return d.CorrelationId
}

// lane picks, of n lanes, the one that handles the messages of d's
// correlation id, so that they are handled in the order they came.
func lane(seed maphash.Seed, d amqp.Delivery, n int) int {
	if n <= 1 {
		return 0
	}
	return int(maphash.String(seed, correlationKey(d)) % uint64(n))
}
