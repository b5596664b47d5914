package api

import (
	"net/http"
	"strconv"
	"strings"

	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/brokers/envelope"
)

// HeaderCorrelationID carries the gateway's correlation id on every response.
const HeaderCorrelationID = "X-Correlation-Id"

// replyHeaderDenied are headers a service may not set: hop-by-hop headers,
// those net/http or writeReply compute, and those the gateway owns. A
// service's Retry-After is dropped too: the gateway's Retry-After is the
// poll interval (202) or when to retry it (503), and on a polled result a
// service's would send the client back to a poll that answers the same.
var replyHeaderDenied = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-authenticate": true,
	"proxy-authorization": true, "proxy-connection": true, "te": true, "trailer": true,
	"transfer-encoding": true, "upgrade": true, "content-length": true,
	"content-type": true, "date": true, strings.ToLower(HeaderCorrelationID): true,
	"traceparent": true, "tracestate": true,
	strings.ToLower(HeaderIdempotentReplayed): true, "preference-applied": true,
	strings.ToLower(middleware.HeaderRequestID): true, "retry-after": true,
	"x-content-type-options": true,
}

// Canonical header keys that writeReply and answer assign, and the
// handler reads, directly (TestHeaderKeysCanonical).
const (
	headerNoSniff       = "X-Content-Type-Options"
	headerContentType   = "Content-Type"
	headerContentLength = "Content-Length"
	// Read from requests.
	headerIdempotencyKey = "Idempotency-Key"
	headerPrefer         = "Prefer"
)

// writeReply writes a service's reply as the HTTP response: its status, its
// allowed headers (a value holding several joined by "\n" becomes as many
// header lines), its content type and its body, never sniffed.
func writeReply(w http.ResponseWriter, rep envelope.Reply) {
	h := w.Header()
	for k, v := range rep.Header {
		if !replyHeaderDenied[strings.ToLower(k)] {
			h[http.CanonicalHeaderKey(k)] = strings.Split(v, "\n")
		}
	}
	// The service's trace context, when valid, replaces the gateway's.
	// The keys below are canonical already (TestHeaderKeysCanonical):
	// assigning them skips Header.Set's canonicalization, a few hundred
	// instructions each on every reply.
	if _, ok := middleware.ParseTraceParent(rep.TraceParent); ok {
		h[middleware.HeaderTraceParent] = []string{rep.TraceParent}
		if middleware.ValidTraceState(rep.TraceState) {
			h[middleware.HeaderTraceState] = []string{rep.TraceState}
		} else {
			delete(h, middleware.HeaderTraceState)
		}
	}
	// The gateway cannot know a type the service did not give, and RFC
	// 9110 §8.3 says not to generate one then (the client may assume
	// application/octet-stream); net/http would sniff one, so stop it, and
	// tell browsers not to sniff either, whatever the type.
	h[headerNoSniff] = []string{"nosniff"}
	if rep.ContentType != "" {
		h[headerContentType] = []string{rep.ContentType}
	} else {
		h["Content-Type"] = nil
	}
	status := rep.StatusCode()
	if status == http.StatusNoContent || status == http.StatusNotModified {
		w.WriteHeader(status) // these carry no body (RFC 9110 §15.3.5, §15.4.5)
		return
	}
	h[headerContentLength] = []string{strconv.Itoa(len(rep.Body))}
	w.WriteHeader(status)
	_, _ = w.Write(rep.Body) // the client may be gone; nothing left to do
}
