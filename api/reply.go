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

// replyHeaderDenied are headers a service may not set: hop-by-hop headers
// and those the gateway owns.
var replyHeaderDenied = map[string]bool{
	"connection": true, "keep-alive": true, "proxy-authenticate": true,
	"proxy-authorization": true, "proxy-connection": true, "te": true, "trailer": true,
	"transfer-encoding": true, "upgrade": true, "content-length": true,
	"content-type": true, "date": true, strings.ToLower(HeaderCorrelationID): true,
	"traceparent": true, "tracestate": true,
}

// writeReply writes a service's reply as the HTTP response: its status, its
// allowed headers, its content type (never sniffed) and its body.
func writeReply(w http.ResponseWriter, rep envelope.Reply) {
	h := w.Header()
	for k, v := range rep.Header {
		if !replyHeaderDenied[strings.ToLower(k)] {
			h.Set(k, v)
		}
	}
	// The service's trace context, when valid, replaces the gateway's.
	if _, ok := middleware.ParseTraceParent(rep.TraceParent); ok {
		h.Set(middleware.HeaderTraceParent, rep.TraceParent)
		if middleware.ValidTraceState(rep.TraceState) {
			h.Set(middleware.HeaderTraceState, rep.TraceState)
		} else {
			h.Del(middleware.HeaderTraceState)
		}
	}
	if rep.ContentType != "" {
		h.Set("Content-Type", rep.ContentType)
	} else {
		h["Content-Type"] = nil // do not let net/http sniff one
	}
	status := rep.StatusCode()
	if status == http.StatusNoContent || status == http.StatusNotModified {
		w.WriteHeader(status) // these carry no body (RFC 9110 §15.3.5, §15.4.5)
		return
	}
	h.Set("Content-Length", strconv.Itoa(len(rep.Body)))
	w.WriteHeader(status)
	_, _ = w.Write(rep.Body) // the client may be gone; nothing left to do
}
