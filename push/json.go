// Package push holds what the push channels (event streams and webhooks)
// share: the JSON form of a reply and of a progress message.
package push

import (
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

// Body is a message body in JSON: as a string when it is text (valid
// UTF-8 without control characters other than tab, CR and LF), else in
// base64.
type Body struct {
	ContentType string  `json:"content_type,omitempty"`
	Body        *string `json:"body,omitempty"`
	BodyBase64  []byte  `json:"body_base64,omitempty"`
}

// NewBody returns body with its content type in JSON form.
func NewBody(contentType string, body []byte) Body {
	b := Body{ContentType: contentType}
	switch {
	case len(body) == 0:
	case isText(body):
		s := string(body)
		b.Body = &s
	default:
		b.BodyBase64 = body
	}
	return b
}

func isText(b []byte) bool {
	if !utf8.Valid(b) {
		return false
	}
	for _, c := range b {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' || c == 0x7f {
			return false
		}
	}
	return true
}

// Progress is a progress message: in a 202 body, a progress event.
type Progress struct {
	Seq int `json:"seq"`
	Body
}

// NewProgress returns p in JSON form.
func NewProgress(p correlation.Progress) *Progress {
	return &Progress{Seq: p.Seq, Body: NewBody(p.ContentType, p.Body)}
}

// Result is a reply: its status, its headers (those keep allows, with
// their values split) and its body; a result event, a webhook's data.
type Result struct {
	Status  int                 `json:"status"`
	Headers map[string][]string `json:"headers,omitempty"`
	Body
}

// NewResult returns rep in JSON form, with the headers keep allows (by
// lower-case name).
func NewResult(rep envelope.Reply, keep func(name string) bool) Result {
	out := Result{Status: rep.StatusCode(), Body: NewBody(rep.ContentType, rep.Body)}
	for k, v := range rep.Header {
		if keep(strings.ToLower(k)) {
			if out.Headers == nil {
				out.Headers = make(map[string][]string, len(rep.Header))
			}
			out.Headers[http.CanonicalHeaderKey(k)] = strings.Split(v, "\n")
		}
	}
	return out
}
