package nats

import (
	"bytes"
	"maps"
	"net/textproto"
	"reflect"
	"strings"
	"testing"

	natsgo "github.com/nats-io/nats.go"

	"github.com/syncgate/syncgate/brokers"
)

// wireRoundTrip encodes m, serialises it as nats.go does on the wire and
// parses it back as a subscriber's nats.go would.
func wireRoundTrip(t *testing.T, m brokers.Message) (brokers.Message, natsgo.Header) {
	t.Helper()
	msg, err := encode("subject", m)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	h, err := natsgo.DecodeHeadersMsg(headerBlock(msg.Header))
	if err != nil {
		t.Fatalf("DecodeHeadersMsg: %v", err)
	}
	got, ref := decode(h, msg.Data)
	if ref != "" {
		t.Fatalf("unexpected body reference %q", ref)
	}
	return got, h
}

// headerBlock is the header block nats.go writes for h (it exports no
// encoder): each value trimmed of ASCII white space, CR and LF turned into
// spaces. TestForeignPublisher covers the real wire.
func headerBlock(h natsgo.Header) []byte {
	var b bytes.Buffer
	b.WriteString("NATS/1.0\r\n")
	for k, vs := range h {
		for _, v := range vs {
			v = strings.NewReplacer("\r", " ", "\n", " ").Replace(textproto.TrimString(v))
			b.WriteString(k + ": " + v + "\r\n")
		}
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

func TestWireRoundTrip(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    brokers.Message
	}{
		{"plain", brokers.Message{Key: "k", Headers: map[string]string{"a": "1", "content-type": "text/plain; charset=utf-8"}, Body: []byte("x")}},
		{"key is the correlation id", brokers.Message{Key: "id-1", Headers: map[string]string{"correlation-id": "id-1"}}},
		{"empty key", brokers.Message{Headers: map[string]string{"correlation-id": "id-1"}}},
		{"white space", brokers.Message{Key: " k ", Headers: map[string]string{"x-spaces": "  a  b  ", "x-tab": "\tt", "x-empty": ""}}},
		{"control characters", brokers.Message{Key: "k", Headers: map[string]string{"x-cr": "a\rb", "x-nul": "a\x00b", "x-del": "\x7f"}}},
		{"several values", brokers.Message{Key: "k", Headers: map[string]string{"set-cookie": "a=1\nb=2", "x-mixed": "a\n b"}}},
		{"unicode", brokers.Message{Key: "ключ", Headers: map[string]string{"x-unicode": "héllo ✓ 世界"}}},
		{"quotes", brokers.Message{Key: "k", Headers: map[string]string{"x-q": `"quoted"`, "x-q2": `" padded "`}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _ := wireRoundTrip(t, tc.m)
			if got.Key != tc.m.Key {
				t.Errorf("key %q, want %q", got.Key, tc.m.Key)
			}
			want := tc.m.Headers
			if len(want) == 0 {
				want = nil
			}
			if !maps.Equal(got.Headers, want) {
				t.Errorf("headers\n got %q\nwant %q", got.Headers, want)
			}
		})
	}
}

// A NATS-native publisher (a service in another language) sends plain
// headers; several values of one name arrive joined by "\n", and a header
// named like one of this package's but not quoted stays as it is.
func TestDecodeForeign(t *testing.T) {
	h := natsgo.Header{
		"correlation-id": {"0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f"},
		"status":         {"201"},
		"set-cookie":     {"a=1", "b=2"},
		"Nats-Msg-Id":    {"dedupe-1"},
	}
	m, ref := decode(h, []byte("{}"))
	want := map[string]string{
		"correlation-id": "0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f",
		"status":         "201",
		"set-cookie":     "a=1\nb=2",
		"Nats-Msg-Id":    "dedupe-1",
	}
	if ref != "" || !reflect.DeepEqual(m.Headers, want) || m.Key != want["correlation-id"] || string(m.Body) != "{}" {
		t.Errorf("decode = %+v (ref %q), want headers %q, key the correlation id", m, ref, want)
	}
}

// Values NATS carries as they are travel unquoted, so services in other
// languages read them without knowing about quotedHeader.
func TestEncodeQuotesOnlyWhatNeedsIt(t *testing.T) {
	msg, err := encode("s", brokers.Message{Key: "k", Headers: map[string]string{
		"content-type": "application/json", "x-spaces": " a ",
	}})
	if err != nil {
		t.Fatal(err)
	}
	if got := msg.Header.Get("content-type"); got != "application/json" {
		t.Errorf("content-type travels as %q", got)
	}
	if got := msg.Header.Get("x-spaces"); got != `" a "` {
		t.Errorf("x-spaces travels as %q, want it quoted", got)
	}
	if got := msg.Header.Values(quotedHeader); !reflect.DeepEqual(got, []string{"x-spaces"}) {
		t.Errorf("%s = %q", quotedHeader, got)
	}
	if got := msg.Header.Get(keyHeader); got != "k" {
		t.Errorf("%s = %q", keyHeader, got)
	}
}

func TestEncodeRejectsBadHeaderNames(t *testing.T) {
	for _, name := range []string{"", "a b", "a:b", "é"} {
		if _, err := encode("s", brokers.Message{Headers: map[string]string{name: "v"}}); err == nil {
			t.Errorf("header name %q accepted", name)
		}
	}
}
