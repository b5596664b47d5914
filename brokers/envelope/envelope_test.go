package envelope_test

import (
	"encoding/json"
	"errors"
	"maps"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

const testID = "0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f"

func TestRequestRoundTrip(t *testing.T) {
	deadline := time.Date(2026, 11, 23, 21, 16, 0, 123_000_000, time.FixedZone("CET", 3600))
	req := envelope.Request{
		CorrelationID:  testID,
		ReplyTo:        "syncgate.replies.node-1",
		Deadline:       deadline,
		ContentType:    "application/json",
		Method:         "POST",
		Path:           "/orders/42",
		Query:          "dry-run=1&x=%20",
		Header:         map[string]string{"Accept-Language": "de", "x-request-id": "r-1", "Principal": "mallory"},
		TraceParent:    "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		TraceState:     "vendor=opaque",
		IdempotencyKey: "k-7",
		Principal:      "alice",
		ParentID:       "0190f1c4-8a2b-7c3d-9e4f-000000000001",
		Part:           "stock",
		Body:           []byte(`{"qty":1}`),
	}
	m := req.Message()
	if m.Key != testID {
		t.Errorf("Key = %q, want the correlation id", m.Key)
	}
	want := map[string]string{
		"correlation-id":              testID,
		"reply-to":                    "syncgate.replies.node-1",
		"deadline":                    "2026-11-23T20:16:00.123Z",
		"content-type":                "application/json",
		"http-method":                 "POST",
		"http-path":                   "/orders/42",
		"http-query":                  "dry-run=1&x=%20",
		"http-header-accept-language": "de",
		"http-header-x-request-id":    "r-1",
		"traceparent":                 "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		"tracestate":                  "vendor=opaque",
		"idempotency-key":             "k-7",
		// A forwarded HTTP header named Principal stays an HTTP header:
		// it cannot produce the gateway's principal header.
		"http-header-principal": "mallory",
		"principal":             "alice",
		"parent-id":             "0190f1c4-8a2b-7c3d-9e4f-000000000001",
		"part":                  "stock",
	}
	if !maps.Equal(m.Headers, want) {
		t.Errorf("headers:\n got %v\nwant %v", m.Headers, want)
	}

	got, err := envelope.DecodeRequest(m)
	if err != nil {
		t.Fatalf("DecodeRequest: %v", err)
	}
	// What comes back is the request in canonical form: deadline in UTC,
	// header names in lower case.
	req.Deadline = deadline.UTC()
	req.Header = map[string]string{"accept-language": "de", "x-request-id": "r-1", "principal": "mallory"}
	if !reflect.DeepEqual(got, req) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, req)
	}
}

// A parent-id that is not a correlation id is refused, as a malformed
// correlation-id is: a service must not act on a part it cannot relate.
func TestRequestBadParentID(t *testing.T) {
	m := envelope.Request{CorrelationID: testID, ParentID: "not-a-uuid", Part: "a"}.Message()
	if _, err := envelope.DecodeRequest(m); !errors.Is(err, envelope.ErrBadCorrelationID) {
		t.Fatalf("DecodeRequest = %v, want ErrBadCorrelationID", err)
	}
}

func TestRequestMinimal(t *testing.T) {
	m := envelope.Request{CorrelationID: testID}.Message()
	if want := map[string]string{"correlation-id": testID}; !maps.Equal(m.Headers, want) {
		t.Errorf("headers %v, want only the id: empty fields are not sent", m.Headers)
	}
	got, err := envelope.DecodeRequest(m)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, envelope.Request{CorrelationID: testID}) {
		t.Errorf("got %+v", got)
	}
}

func TestDeadlineFormat(t *testing.T) {
	for _, tc := range []struct {
		in   time.Time
		want string
	}{
		{time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), "2026-01-02T03:04:05.000Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 7_000_000, time.UTC), "2026-01-02T03:04:05.007Z"},
		{time.Date(2026, 1, 2, 3, 4, 5, 999_999_999, time.UTC), "2026-01-02T03:04:05.999Z"}, // truncated, never later
		{time.Date(2026, 1, 2, 0, 30, 0, 0, time.FixedZone("", -5*3600)), "2026-01-02T05:30:00.000Z"},
	} {
		m := envelope.Request{CorrelationID: testID, Deadline: tc.in}.Message()
		if got := m.Headers[envelope.Deadline]; got != tc.want {
			t.Errorf("deadline %v encoded as %q, want %q", tc.in, got, tc.want)
		}
	}

	// Services in other languages may send other RFC 3339 forms; they are
	// read in UTC and at the contract's millisecond precision, rounding down.
	for in, want := range map[string]time.Time{
		"2026-01-02T03:04:05.123Z":            time.Date(2026, 1, 2, 3, 4, 5, 123_000_000, time.UTC),
		"2026-01-02T03:04:05Z":                time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
		"2026-01-02T03:04:05.123999999Z":      time.Date(2026, 1, 2, 3, 4, 5, 123_000_000, time.UTC),
		"2026-01-02T04:04:05.5+01:00":         time.Date(2026, 1, 2, 3, 4, 5, 500_000_000, time.UTC),
		"2026-01-02T03:04:05.000000001-00:00": time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC),
	} {
		m := brokers.Message{Headers: map[string]string{envelope.CorrelationID: testID, envelope.Deadline: in}}
		req, err := envelope.DecodeRequest(m)
		if err != nil {
			t.Errorf("deadline %q: %v", in, err)
			continue
		}
		if req.Deadline != want { // == on purpose: UTC location and no monotonic reading
			t.Errorf("deadline %q decoded as %v, want %v", in, req.Deadline, want)
		}
	}
}

func TestReplyRoundTrip(t *testing.T) {
	rep := envelope.Reply{
		CorrelationID: testID,
		Status:        201,
		ContentType:   "application/json",
		Header:        map[string]string{"Location": "/orders/42", "retry-after": "5"},
		TraceParent:   "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
		TraceState:    "vendor=opaque",
		Body:          []byte(`{"id":42}`),
	}
	m := rep.Message()
	want := map[string]string{
		"correlation-id":          testID,
		"status":                  "201",
		"content-type":            "application/json",
		"http-header-location":    "/orders/42",
		"http-header-retry-after": "5",
		"traceparent":             rep.TraceParent,
		"tracestate":              "vendor=opaque",
	}
	if m.Key != testID || !maps.Equal(m.Headers, want) {
		t.Errorf("message key %q headers:\n got %v\nwant %v", m.Key, m.Headers, want)
	}
	got, err := envelope.DecodeReply(m)
	if err != nil {
		t.Fatalf("DecodeReply: %v", err)
	}
	rep.Header = map[string]string{"location": "/orders/42", "retry-after": "5"}
	if !reflect.DeepEqual(got, rep) {
		t.Errorf("round trip:\n got %+v\nwant %+v", got, rep)
	}
}

func TestReplyStatus(t *testing.T) {
	if got := (envelope.Reply{}).StatusCode(); got != 200 {
		t.Errorf("StatusCode() of an unset status = %d, want 200", got)
	}
	m := envelope.Reply{CorrelationID: testID}.Message()
	if got := m.Headers[envelope.Status]; got != "200" {
		t.Errorf("status header = %q, want 200 written explicitly", got)
	}
	for in, want := range map[string]int{"200": 200, "201": 201, "204": 204, "599": 599, " 404 ": 404, "\t201 ": 201} {
		rep, err := envelope.DecodeReply(brokers.Message{Headers: map[string]string{
			envelope.CorrelationID: testID, envelope.Status: in,
		}})
		if err != nil || rep.Status != want {
			t.Errorf("status %q: %d, %v; want %d", in, rep.Status, err, want)
		}
	}
	// No status header: 200.
	rep, err := envelope.DecodeReply(brokers.Message{Headers: map[string]string{envelope.CorrelationID: testID}})
	if err != nil || rep.StatusCode() != 200 {
		t.Errorf("no status header: %d, %v; want 200", rep.StatusCode(), err)
	}
}

func TestDecodeIDCanonical(t *testing.T) {
	upper := strings.ToUpper(testID)
	rep, err := envelope.DecodeReply(brokers.Message{Headers: map[string]string{envelope.CorrelationID: upper}})
	if err != nil {
		t.Fatal(err)
	}
	// Lower case, so it matches the key the registry holds.
	if rep.CorrelationID != testID {
		t.Errorf("id %q, want %q", rep.CorrelationID, testID)
	}
}

func TestDecodeInvalid(t *testing.T) {
	long := strings.Repeat("a", envelope.MaxHeaderValue+1)
	tests := []struct {
		name    string
		headers map[string]string // correlation-id is testID unless set here
		want    error             // errors.Is target besides ErrInvalid
		reply   bool              // only DecodeReply validates this
	}{
		{name: "no id", headers: map[string]string{envelope.CorrelationID: "-"}, want: envelope.ErrNoCorrelationID},
		{name: "empty id", headers: map[string]string{envelope.CorrelationID: ""}, want: envelope.ErrNoCorrelationID},
		{name: "id too short", headers: map[string]string{envelope.CorrelationID: testID[:35]}, want: envelope.ErrBadCorrelationID},
		{name: "id too long", headers: map[string]string{envelope.CorrelationID: testID + "0"}, want: envelope.ErrBadCorrelationID},
		{name: "id non-hex", headers: map[string]string{envelope.CorrelationID: "0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0g"}, want: envelope.ErrBadCorrelationID},
		{name: "id hyphens moved", headers: map[string]string{envelope.CorrelationID: "0190f1c48-a2b-7c3d-9e4f-5a6b7c8d9e0f"}, want: envelope.ErrBadCorrelationID},
		{name: "id braces", headers: map[string]string{envelope.CorrelationID: "{" + testID + "}"}, want: envelope.ErrBadCorrelationID},
		{name: "id urn", headers: map[string]string{envelope.CorrelationID: "urn:uuid:" + testID}, want: envelope.ErrBadCorrelationID},
		{name: "id without hyphens", headers: map[string]string{envelope.CorrelationID: strings.ReplaceAll(testID, "-", "")}, want: envelope.ErrBadCorrelationID},
		{name: "id with spaces", headers: map[string]string{envelope.CorrelationID: " " + testID[1:]}, want: envelope.ErrBadCorrelationID},
		{name: "status abc", headers: map[string]string{envelope.Status: "abc"}, reply: true},
		{name: "status 99", headers: map[string]string{envelope.Status: "99"}, reply: true},
		{name: "status 100 (informational, not final)", headers: map[string]string{envelope.Status: "100"}, reply: true},
		{name: "status 600", headers: map[string]string{envelope.Status: "600"}, reply: true},
		{name: "status empty", headers: map[string]string{envelope.Status: ""}, reply: true},
		{name: "status negative", headers: map[string]string{envelope.Status: "-200"}, reply: true},
		{name: "status float", headers: map[string]string{envelope.Status: "200.0"}, reply: true},
		{name: "status oversized", headers: map[string]string{envelope.Status: long}, reply: true},
		{name: "content-type LF", headers: map[string]string{envelope.ContentType: "text/plain\nx-injected: 1"}, reply: true},
		{name: "content-type oversized", headers: map[string]string{envelope.ContentType: long}, reply: true},
		{name: "header name with space", headers: map[string]string{envelope.HeaderPrefix + "x request": "v"}},
		{name: "header name with colon", headers: map[string]string{envelope.HeaderPrefix + "x:y": "v"}},
		{name: "header name empty", headers: map[string]string{envelope.HeaderPrefix: "v"}},
		{name: "header name non-ASCII", headers: map[string]string{envelope.HeaderPrefix + "x-é": "v"}},
		{name: "header value CR", headers: map[string]string{envelope.HeaderPrefix + "x": "a\rb"}},
		{name: "header value CR in the second of two", headers: map[string]string{envelope.HeaderPrefix + "x": "a\nb\rc"}},
		{name: "header value oversized second of two", headers: map[string]string{envelope.HeaderPrefix + "x": "a\n" + long}},
		{name: "status twice", headers: map[string]string{envelope.Status: "200\n201"}, reply: true},
		{name: "header value CRLF", headers: map[string]string{envelope.HeaderPrefix + "x": "a\r\nSet-Cookie: s=1"}},
		{name: "header value NUL", headers: map[string]string{envelope.HeaderPrefix + "x": "a\x00b"}},
		{name: "header value DEL", headers: map[string]string{envelope.HeaderPrefix + "x": "a\x7fb"}},
		{name: "header value oversized", headers: map[string]string{envelope.HeaderPrefix + "x": long}},
		{name: "header value bad, name long", headers: map[string]string{envelope.HeaderPrefix + long: "\r"}},
		{name: "header twice", headers: map[string]string{envelope.HeaderPrefix + "X-A": "1", envelope.HeaderPrefix + "x-a": "2"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := map[string]string{envelope.CorrelationID: testID}
			maps.Copy(h, tc.headers)
			if h[envelope.CorrelationID] == "-" {
				delete(h, envelope.CorrelationID)
			}
			m := brokers.Message{Key: testID, Headers: h, Body: []byte("x")}

			check := func(fn string, err error) {
				t.Helper()
				if !errors.Is(err, envelope.ErrInvalid) {
					t.Errorf("%s error = %v, want ErrInvalid", fn, err)
				}
				if tc.want != nil && !errors.Is(err, tc.want) {
					t.Errorf("%s error = %v, want %v", fn, err, tc.want)
				}
				if err != nil && len(err.Error()) > 200 {
					t.Errorf("%s error is %d bytes long: the input is not truncated", fn, len(err.Error()))
				}
			}
			rep, err := envelope.DecodeReply(m)
			check("DecodeReply", err)
			if err == nil {
				t.Errorf("DecodeReply accepted it: %+v", rep)
			}
			if !tc.reply {
				_, err := envelope.DecodeRequest(m)
				check("DecodeRequest", err)
			}
		})
	}
}

func TestDecodeRequestInvalidDeadline(t *testing.T) {
	for _, d := range []string{
		"tomorrow",
		"1700000000",
		"2026-01-02 03:04:05Z",          // space, not T
		"2026-01-02T03:04:05",           // no offset
		"2026-13-02T03:04:05.000Z",      // month 13
		"9999-12-31T23:59:59.999-01:00", // year 10000 in UTC: cannot be encoded
		"0000-01-01T00:00:00.000+01:00", // year -1 in UTC
		strings.Repeat("9", 1000),
	} {
		m := brokers.Message{Headers: map[string]string{envelope.CorrelationID: testID, envelope.Deadline: d}}
		req, err := envelope.DecodeRequest(m)
		if !errors.Is(err, envelope.ErrInvalid) {
			t.Errorf("deadline %.40q: %+v, %v; want ErrInvalid", d, req.Deadline, err)
		} else if len(err.Error()) > 200 {
			t.Errorf("deadline %.40q: error is %d bytes long", d, len(err.Error()))
		}
	}
}

func TestDecodeAccepts(t *testing.T) {
	h := map[string]string{
		envelope.CorrelationID:               testID,
		envelope.HeaderPrefix + "x-tab":      "a\tb",
		envelope.HeaderPrefix + "x-max":      strings.Repeat("v", envelope.MaxHeaderValue),
		envelope.HeaderPrefix + "x-empty":    "",
		envelope.HeaderPrefix + "x-utf8":     "grüße",
		envelope.HeaderPrefix + "X-Upper":    "u",
		envelope.HeaderPrefix + "set-cookie": "a=1\nb=2",
		"x-unknown-header":                   "ignored",
		envelope.ContentType:                 "text/plain; charset=utf-8",
	}
	rep, err := envelope.DecodeReply(brokers.Message{Headers: h})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"x-tab": "a\tb", "x-max": h[envelope.HeaderPrefix+"x-max"], "x-empty": "", "x-utf8": "grüße", "x-upper": "u",
		"set-cookie": "a=1\nb=2", // repeated: kept joined by LF
	}
	if !maps.Equal(rep.Header, want) {
		t.Errorf("headers %v, want %v", rep.Header, want)
	}
}

func TestValidHeader(t *testing.T) {
	for s, want := range map[string]bool{
		"x-request-id": true, "X_Y.Z~!#$%&'*+^`|": true, "": false, "a b": false, "a:b": false,
		"a(b)": false, "a/b": false, "a\"b": false, "a\x00": false, "é": false,
	} {
		if got := envelope.ValidHeaderName(s); got != want {
			t.Errorf("ValidHeaderName(%q) = %v, want %v", s, got, want)
		}
	}
	for s, want := range map[string]bool{
		"": true, "a\tb": true, "ü": true, "a\rb": false, "a\nb": false, "\x00": false, "\x1f": false, "\x7f": false,
		strings.Repeat("a", envelope.MaxHeaderValue): true, strings.Repeat("a", envelope.MaxHeaderValue+1): false,
	} {
		if got := envelope.ValidHeaderValue(s); got != want {
			t.Errorf("ValidHeaderValue(%.20q) = %v, want %v", s, got, want)
		}
	}
}

func TestFailureReply(t *testing.T) {
	id := "019ab5c2-8a2e-7c43-9d1b-5b0e2f7c9a10"
	rep := envelope.FailureReply(id, envelope.FailureDeadLettered, "failed 5 times")
	if rep.Status != 502 || rep.ContentType != "application/problem+json" || rep.CorrelationID != id {
		t.Fatalf("FailureReply = %+v", rep)
	}
	var p map[string]any
	if err := json.Unmarshal(rep.Body, &p); err != nil {
		t.Fatal(err)
	}
	if p["type"] != "urn:syncgate:problem:dead-lettered" || p["status"] != float64(502) ||
		p["correlation_id"] != id || p["detail"] != "failed 5 times" || p["title"] == "" {
		t.Fatalf("problem = %v", p)
	}
	// It travels as an ordinary reply.
	got, err := envelope.DecodeReply(rep.Message())
	if err != nil || got.Status != 502 || string(got.Body) != string(rep.Body) {
		t.Fatalf("DecodeReply(FailureReply) = %+v, %v", got, err)
	}
}

func TestInvalidReason(t *testing.T) {
	_, err := envelope.DecodeReply(brokers.Message{Headers: map[string]string{
		envelope.CorrelationID: testID, envelope.Status: "abc",
	}})
	if got, want := envelope.InvalidReason(err), `status "abc" is not an HTTP status code`; got != want {
		t.Errorf("InvalidReason = %q, want %q", got, want)
	}
	if got := envelope.InvalidReason(errors.New("other")); got != "other" {
		t.Errorf("InvalidReason(other) = %q", got)
	}
}

// A route's message key becomes the message's key and comes back as Key;
// without one the key is the correlation id and Key stays empty.
func TestRequestKey(t *testing.T) {
	m := envelope.Request{CorrelationID: testID, Key: "customer-42"}.Message()
	if m.Key != "customer-42" {
		t.Fatalf("Message().Key = %q, want the route's key", m.Key)
	}
	got, err := envelope.DecodeRequest(m)
	if err != nil || got.Key != "customer-42" {
		t.Fatalf("DecodeRequest: Key %q, %v", got.Key, err)
	}
	if m := (envelope.Request{CorrelationID: testID}).Message(); m.Key != testID {
		t.Fatalf("without a key: Message().Key = %q, want the correlation id", m.Key)
	}
}
