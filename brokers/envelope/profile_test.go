package envelope_test

import (
	"testing"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

func TestProfilesApply(t *testing.T) {
	for _, tc := range []struct {
		p    envelope.Profile
		want map[string]string
	}{
		{envelope.ProfileSpring, map[string]string{"kafka_correlationId": testID, "kafka_replyTopic": "inbox"}},
		{envelope.ProfileZilla, map[string]string{"zilla:correlation-id": testID, "zilla:reply-to": "inbox"}},
		{envelope.ProfileCloudEventsAMQP, map[string]string{"cloudEvents:specversion": "1.0", "cloudEvents:id": testID,
			"cloudEvents:correlationid": testID, "cloudEvents:replyto": "inbox"}},
		{envelope.ProfileCloudEvents, map[string]string{"ce_specversion": "1.0", "ce_id": testID, "ce_source": "/syncgate",
			"ce_type": "syncgate.request", "ce_correlationid": testID, "ce_replyto": "inbox"}},
	} {
		m := envelope.Request{CorrelationID: testID, ReplyTo: "inbox"}.Message()
		tc.p.Apply(m)
		for k, v := range tc.want {
			if m.Headers[k] != v {
				t.Errorf("%s: %s = %q, want %q", tc.p, k, m.Headers[k], v)
			}
		}
		if m.Headers["correlation-id"] != testID || m.Headers["reply-to"] != "inbox" {
			t.Errorf("%s: syncgate's own headers are gone: %v", tc.p, m.Headers)
		}
	}
	if _, err := envelope.ParseProfile("soap"); err == nil {
		t.Error("ParseProfile(soap) accepted")
	}
}

// A reply in each profile decodes as syncgate's; syncgate's own
// correlation-id wins over another profile's; a bad :status is invalid.
func TestProfilesReplies(t *testing.T) {
	for _, tc := range []struct {
		name    string
		h       map[string]string
		status  int
		ctype   string
		invalid bool
	}{
		{"spring", map[string]string{"kafka_correlationId": testID, "contentType": "application/json"}, 200, "application/json", false},
		{"zilla", map[string]string{"zilla:correlation-id": testID, ":status": "201", "content-type": "text/plain"}, 201, "text/plain", false},
		{"cloudevents", map[string]string{"ce_correlationid": testID, "ce_specversion": "1.0", "ce_httpstatus": "409"}, 409, "", false},
		{"cloudevents amqp", map[string]string{"cloudEvents:correlationid": testID, "cloudEvents:httpstatus": "202", "content-type": "text/plain"}, 202, "text/plain", false},
		{"syncgate wins", map[string]string{"correlation-id": testID, "kafka_correlationId": "other", "status": "202"}, 202, "", false},
		{"zilla bad status", map[string]string{"zilla:correlation-id": testID, ":status": "ok"}, 0, "", true},
		{"none", map[string]string{"x": "y"}, 0, "", true},
	} {
		r, err := envelope.DecodeReply(brokers.Message{Headers: tc.h, Body: []byte("b")})
		switch {
		case tc.invalid && err == nil:
			t.Errorf("%s: decoded %+v, want an error", tc.name, r)
		case !tc.invalid && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.invalid && (r.CorrelationID != testID || r.StatusCode() != tc.status || r.ContentType != tc.ctype):
			t.Errorf("%s: %+v, want status %d content type %q", tc.name, r, tc.status, tc.ctype)
		}
	}
}

// A progress message is marked by the progress header in syncgate's
// contract and in the profiles that carry plain headers (spring, zilla),
// and by ce_type syncgate.progress in the CloudEvents profiles; anything
// but true or false in the header is invalid.
func TestProgressMarker(t *testing.T) {
	for _, tc := range []struct {
		name     string
		h        map[string]string
		progress bool
		invalid  bool
	}{
		{"syncgate", map[string]string{"correlation-id": testID, "progress": "true"}, true, false},
		{"syncgate 1", map[string]string{"correlation-id": testID, "progress": " 1 "}, true, false},
		{"syncgate false", map[string]string{"correlation-id": testID, "progress": "false"}, false, false},
		{"syncgate reply", map[string]string{"correlation-id": testID}, false, false},
		{"syncgate junk", map[string]string{"correlation-id": testID, "progress": "maybe"}, false, true},
		{"spring", map[string]string{"kafka_correlationId": testID, "progress": "true"}, true, false},
		{"zilla", map[string]string{"zilla:correlation-id": testID, "progress": "true"}, true, false},
		{"cloudevents", map[string]string{"ce_correlationid": testID, "ce_type": "syncgate.progress"}, true, false},
		{"cloudevents reply", map[string]string{"ce_correlationid": testID, "ce_type": "com.example.reply"}, false, false},
		{"cloudevents amqp", map[string]string{"cloudEvents:correlationid": testID, "cloudEvents:type": "syncgate.progress"}, true, false},
	} {
		r, err := envelope.DecodeReply(brokers.Message{Headers: tc.h, Body: []byte("50%")})
		switch {
		case tc.invalid && err == nil:
			t.Errorf("%s: decoded %+v, want an error", tc.name, r)
		case !tc.invalid && err != nil:
			t.Errorf("%s: %v", tc.name, err)
		case !tc.invalid && r.Progress != tc.progress:
			t.Errorf("%s: Progress = %v, want %v", tc.name, r.Progress, tc.progress)
		}
	}
	m := envelope.Reply{CorrelationID: testID, Progress: true, Body: []byte("1/3")}.Message()
	if m.Headers["progress"] != "true" {
		t.Errorf("a progress reply's message has progress = %q, want true", m.Headers["progress"])
	}
	if r, err := envelope.DecodeReply(m); err != nil || !r.Progress || string(r.Body) != "1/3" {
		t.Errorf("round trip: %+v, %v", r, err)
	}
}
