package envelope_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// The fuzz targets build a message from arbitrary header values. Whatever
// comes in, decoding must not panic, must fail only with ErrInvalid, and
// anything it accepts must survive encoding and decoding again unchanged:
// a service that echoes a decoded value back must produce a valid message.
// The seeds run as an ordinary test; `go test -fuzz FuzzDecodeReply` explores.

func FuzzDecodeReply(f *testing.F) {
	const id = "0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f"
	f.Add(id, "200", "application/json", "x-request-id", "abc", "", "", []byte(`{"ok":true}`))
	f.Add(id, "", "", "", "", "", "", []byte(nil))
	f.Add("0190F1C4-8A2B-7C3D-9E4F-5A6B7C8D9E0F", " 404 ", "text/plain", "Retry-After", "5", "http-header-x-a", "1", []byte("x"))
	f.Add(id, "abc", "", "", "", "", "", []byte(nil))
	f.Add(id, "99", "", "", "", "", "", []byte(nil))
	f.Add(id, "600", "", "", "", "", "", []byte(nil))
	f.Add(id, "+201", "", "", "", "", "", []byte(nil))
	f.Add(id, "200", "text/plain\r\nx: y", "", "", "", "", []byte(nil))
	f.Add(id, "200", "", "bad name", "v", "", "", []byte(nil))
	f.Add(id, "200", "", "x", "a\nb", "", "", []byte(nil))
	f.Add(id, "200", "", "x", "a\x00b", "", "", []byte(nil))
	f.Add(id, "200", "", "X-Dup", "1", "http-header-x-dup", "2", []byte(nil))
	f.Add(id, "200", "", "", "", "http-header-", "v", []byte(nil))
	f.Add("", "200", "", "", "", "", "", []byte(nil))
	f.Add("{"+id+"}", "200", "", "", "", "", "", []byte(nil))
	f.Add("urn:uuid:"+id, "200", "", "", "", "", "", []byte(nil))
	f.Add("0190f1c48a2b7c3d9e4f5a6b7c8d9e0f", "200", "", "", "", "", "", []byte(nil))
	f.Add("0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0g", "200", "", "", "", "", "", []byte(nil))
	f.Fuzz(func(t *testing.T, id, status, contentType, hname, hvalue, rawKey, rawValue string, body []byte) {
		h := map[string]string{envelope.CorrelationID: id}
		if status != "" {
			h[envelope.Status] = status
		}
		if contentType != "" {
			h[envelope.ContentType] = contentType
		}
		if hname != "" {
			h[envelope.HeaderPrefix+hname] = hvalue
		}
		if rawKey != "" {
			h[rawKey] = rawValue
		}
		rep, err := envelope.DecodeReply(brokers.Message{Key: id, Headers: h, Body: body})
		if err != nil {
			if !errors.Is(err, envelope.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if rep.Status < 200 || rep.Status > 599 {
			if _, set := h[envelope.Status]; set || rep.Status != 0 {
				t.Fatalf("accepted status %d", rep.Status)
			}
		}
		m := rep.Message()
		if m.Key != rep.CorrelationID {
			t.Fatalf("key %q, id %q", m.Key, rep.CorrelationID)
		}
		again, err := envelope.DecodeReply(m)
		if err != nil {
			t.Fatalf("re-decoding %+v: %v", m.Headers, err)
		}
		if rep.Status == 0 {
			rep.Status = 200 // encoded explicitly
		}
		if !reflect.DeepEqual(rep, again) {
			t.Fatalf("round trip changed the reply:\n got %+v\nwant %+v", again, rep)
		}
	})
}

func FuzzDecodeRequest(f *testing.F) {
	const id = "0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f"
	f.Add(id, "2026-11-23T20:16:00.123Z", "POST", "/orders", "a=1", "accept", "application/json", []byte("{}"))
	f.Add(id, "", "", "", "", "", "", []byte(nil))
	f.Add(id, "2026-11-23T20:16:00Z", "GET", "/", "", "", "", []byte(nil))
	f.Add(id, "2026-11-23T20:16:00.123456789Z", "GET", "/", "", "", "", []byte(nil))
	f.Add(id, "2026-11-23T21:16:00.5+01:00", "GET", "/", "", "", "", []byte(nil))
	f.Add(id, "9999-12-31T23:59:59.999-01:00", "GET", "/", "", "", "", []byte(nil))
	f.Add(id, "0000-01-01T00:00:00.000+01:00", "GET", "/", "", "", "", []byte(nil))
	f.Add(id, "tomorrow", "GET", "/", "", "", "", []byte(nil))
	f.Add(id, "1700000000", "GET", "/", "", "", "", []byte(nil))
	f.Add(id, "", "GET", "/", "", "bad name", "v", []byte(nil))
	f.Add(id, "", "GET", "/", "", "x", "a\r\nb", []byte(nil))
	f.Add("not-a-uuid", "", "GET", "/", "", "", "", []byte(nil))
	f.Fuzz(func(t *testing.T, id, deadline, method, path, query, hname, hvalue string, body []byte) {
		h := map[string]string{envelope.CorrelationID: id}
		for k, v := range map[string]string{
			envelope.Deadline: deadline, envelope.Method: method,
			envelope.Path: path, envelope.Query: query,
		} {
			if v != "" {
				h[k] = v
			}
		}
		if hname != "" {
			h[envelope.HeaderPrefix+hname] = hvalue
		}
		req, err := envelope.DecodeRequest(brokers.Message{Key: id, Headers: h, Body: body})
		if err != nil {
			if !errors.Is(err, envelope.ErrInvalid) {
				t.Fatalf("error %v does not wrap ErrInvalid", err)
			}
			return
		}
		again, err := envelope.DecodeRequest(req.Message())
		if err != nil {
			t.Fatalf("re-decoding %+v: %v", req.Message().Headers, err)
		}
		if !reflect.DeepEqual(req, again) {
			t.Fatalf("round trip changed the request:\n got %+v\nwant %+v", again, req)
		}
	})
}
