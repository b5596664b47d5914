package nats

import (
	"bytes"
	"fmt"
	"hash/maphash"
	"net/textproto"
	"slices"
	"strconv"
	"strings"

	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// Headers this package adds to the envelope's. Handlers never see the
// first three.
const (
	// keyHeader carries brokers.Message.Key unless it is the correlation id.
	keyHeader = "x-syncgate-key"
	// quotedHeader names, one value each, the headers whose values travel
	// Go-quoted (strconv.Quote) because NATS would not carry them as they
	// are: leading or trailing white space, control characters.
	quotedHeader = "x-syncgate-quoted"
	// bodyHeader replaces a body larger than the server's max_payload:
	// "<bucket>/<object>" in the JetStream object store (see bodies.go).
	bodyHeader = "x-syncgate-body"
	// probeHeader marks the request an inbox subscription answers so that
	// a second process with the same reply subject finds it in use.
	probeHeader = "x-syncgate-probe"
	// reasonHeader and sourceHeader are added to a dead letter: the
	// handler's last error and the subject the message came from.
	reasonHeader = "x-syncgate-dead-letter-reason"
	sourceHeader = "x-syncgate-dead-letter-subject"
)

// encode maps m to a NATS message for subject. Every header becomes a NATS
// header of the same (case-sensitive) name; a value holding "\n" becomes
// that many values (brokers.Message's convention for a header carried
// several times). A value NATS would alter (it trims white space at both
// ends and turns CR and LF into spaces) travels quoted, named in
// quotedHeader. The body is the data, not copied: nats.go copies it into
// its write buffer before Publish returns.
func encode(subject string, m brokers.Message) (*natsgo.Msg, error) {
	n := len(m.Headers) + 1
	h := make(natsgo.Header, n)
	// The values of the headers carried once, as they are (all of them, as
	// a rule), share one array: one allocation rather than one a header.
	// Each gets a slice of capacity 1, so that appending to one header's
	// values cannot overwrite the next's.
	single := make([]string, 0, n)
	put := func(k, v string) error {
		if !validHeaderName(k) {
			return fmt.Errorf("nats: header name %q: NATS header names are printable ASCII without ':' or spaces", k)
		}
		if strings.IndexByte(v, '\n') < 0 && !needsQuoting(v) {
			single = append(single, v)
			h[k] = single[len(single)-1 : len(single) : len(single)]
			return nil
		}
		vals := strings.Split(v, "\n")
		if slices.ContainsFunc(vals, needsQuoting) {
			for i, p := range vals {
				vals[i] = strconv.Quote(p)
			}
			h[quotedHeader] = append(h[quotedHeader], k)
		}
		h[k] = vals
		return nil
	}
	for k, v := range m.Headers {
		if err := put(k, v); err != nil {
			return nil, err
		}
	}
	if m.Key != m.Headers[envelope.CorrelationID] {
		if err := put(keyHeader, m.Key); err != nil {
			return nil, err
		}
	}
	return &natsgo.Msg{Subject: subject, Header: h, Data: m.Body}, nil
}

// needsQuoting reports whether NATS would not carry v byte for byte.
func needsQuoting(v string) bool {
	if textproto.TrimString(v) != v {
		return true
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < ' ' && c != '\t' || c == 0x7f {
			return true
		}
	}
	return false
}

func validHeaderName(k string) bool {
	if k == "" {
		return false
	}
	for i := 0; i < len(k); i++ {
		if c := k[i]; c <= ' ' || c >= 0x7f || c == ':' {
			return false
		}
	}
	return true
}

// decode maps NATS headers and data back to a message, reversing encode:
// a header's values joined by "\n", quoted ones unquoted, the key from
// keyHeader or else the correlation id. Headers from other publishers
// arrive as they are. ref is the body bucket reference when the body
// travels there (the returned message then has none yet). The message
// shares nothing with h and data: the body is copied.
func decode(h natsgo.Header, data []byte) (m brokers.Message, ref string) {
	if len(data) > 0 {
		m.Body = bytes.Clone(data)
	}
	var quoted []string
	if q := h[quotedHeader]; len(q) > 0 {
		quoted = q
	}
	keyed := false
	if len(h) > 0 {
		m.Headers = make(map[string]string, len(h))
	}
	for k, vals := range h {
		switch k {
		case quotedHeader:
			continue
		case bodyHeader:
			ref = first(vals)
			continue
		}
		if slices.Contains(quoted, k) {
			vals = slices.Clone(vals)
			for i, v := range vals {
				if u, err := strconv.Unquote(v); err == nil {
					vals[i] = u
				}
			}
		}
		v := strings.Join(vals, "\n")
		if k == keyHeader {
			m.Key, keyed = v, true
			continue
		}
		m.Headers[k] = v
	}
	if !keyed {
		m.Key = m.Headers[envelope.CorrelationID]
	}
	// The Nats-Msg-Id Publish set from the correlation id (jetstream
	// mode) is the broker's, not the message's: handlers see what was
	// published.
	if id, ok := m.Headers[jetstream.MsgIDHeader]; ok && id == m.Headers[envelope.CorrelationID] {
		delete(m.Headers, jetstream.MsgIDHeader)
	}
	if len(m.Headers) == 0 {
		m.Headers = nil
	}
	return m, ref
}

func first(vals []string) string {
	if len(vals) == 0 {
		return ""
	}
	return vals[0]
}

// lane picks, of n lanes, the one that handles the messages of key, so that
// they are handled in the order they came.
func laneOf(seed maphash.Seed, key string, n int) int {
	if n <= 1 {
		return 0
	}
	return int(maphash.String(seed, key) % uint64(n))
}
