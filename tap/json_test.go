package tap_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/syncgate/syncgate/tap"
)

// AppendJSON writes what encoding/json writes, read back the same.
func TestAppendJSONMatchesEncodingJSON(t *testing.T) {
	for _, x := range []tap.Exchange{
		{},
		{Time: time.Date(2026, 12, 5, 14, 30, 1, 123456789, time.UTC), Node: "n1", Route: "orders", CorrelationID: "id",
			RequestID: "r\"q\\1\n", Principal: "alice <a&b>",
			Request: tap.Request{Method: "POST", Path: "/o/\u2028x", Query: "a=1&b=\xff",
				Header: map[string][]string{"X-A": {"1", "2"}, "Content-Type": {"text/plain\t; x"}},
				Body:   []byte{0, 1, 0xff, '\n'}, BodyTruncated: true},
			Status: 201, Outcome: "reply",
			Reply:      &tap.Reply{Status: 201, ContentType: "application/json", Header: map[string]string{"location": "/o/1", "x": "\x01"}, Body: []byte(`{"ok":true}`)},
			DurationMS: 1.25, BrokerMS: 0.5},
		{Time: time.Date(2026, 1, 2, 3, 4, 5, 0, time.FixedZone("x", 3600)), Status: 504, Outcome: "timeout", DurationMS: 2000},
		// Every control character, compared byte for byte (one header).
		{Route: "\x00\x01\b\t\n\v\f\r\x1f\x7f", Request: tap.Request{Path: "/\b\f", Header: map[string][]string{"X": {"\f"}}}},
	} {
		want, err := json.Marshal(&x)
		if err != nil {
			t.Fatal(err)
		}
		got := tap.AppendJSON(nil, &x)
		var a, b tap.Exchange
		if err := json.Unmarshal(got, &a); err != nil {
			t.Fatalf("AppendJSON wrote invalid JSON %s: %v", got, err)
		}
		if err := json.Unmarshal(want, &b); err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(a, b) {
			t.Errorf("AppendJSON read back\n%+v\nencoding/json\n%+v\n(%s\n%s)", a, b, got, want)
		}
		if len(x.Request.Header) <= 1 && string(got) != string(want) {
			t.Errorf("bytes differ:\n%s\n%s", got, want)
		}
	}
}
