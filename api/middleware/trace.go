package middleware

import (
	"encoding/hex"
	"math/rand/v2"
	"net/http"
	"strings"
)

// W3C Trace Context header names.
const (
	HeaderTraceParent = "Traceparent"
	HeaderTraceState  = "Tracestate"
)

// TraceContext is the W3C trace context of one request as the gateway
// forwards it: the caller's trace id (or a new one), a new span id for the
// gateway's hop, the caller's flags, and the caller's tracestate when valid.
type TraceContext struct {
	TraceID string // 32 lower-case hex digits
	SpanID  string // 16 lower-case hex digits: the gateway's span
	Flags   string // 2 hex digits
	State   string
}

// TraceParent formats the traceparent header (version 00).
func (tc TraceContext) TraceParent() string {
	if tc.TraceID == "" {
		return ""
	}
	return "00-" + tc.TraceID + "-" + tc.SpanID + "-" + tc.Flags
}

// Trace accepts a valid traceparent/tracestate from the caller or starts a
// new trace, stores the result in the request's Info (see WithInfo), and
// returns the traceparent on the response (a reply's own traceparent, set
// later by the handler, wins). An invalid traceparent is replaced, as the
// W3C recommendation says; an invalid tracestate is dropped.
func Trace(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		startSpan(w, r)
		next.ServeHTTP(w, r)
	})
}

// startSpan sets the request's trace context in its Info and on the
// response. Out of line: its frame is gone before the request waits, so
// it costs nothing per waiting request (issue 17).
//
//go:noinline
func startSpan(w http.ResponseWriter, r *http.Request) {
	tc, ok := ParseTraceParent(first(r.Header[HeaderTraceParent])) // canonical key: see first
	if ok {
		if st := strings.Join(r.Header[HeaderTraceState], ","); ValidTraceState(st) {
			tc.State = st
		}
	} else {
		tc = TraceContext{TraceID: newHex(16), Flags: "00"}
	}
	tc.SpanID = newHex(8)
	tp := tc.TraceParent()
	if info := InfoFrom(r.Context()); info != nil {
		info.Trace, info.traced, info.traceParent = tc, tc, tp
	}
	h := w.Header()
	h.Set(HeaderTraceParent, tp)
	if tc.State != "" {
		h.Set(HeaderTraceState, tc.State)
	}
}

// ParseTraceParent validates a traceparent header value
// (version-traceid-parentid-flags). Versions above 00 are read as 00, as the
// specification asks; version ff, all-zero ids and upper-case hex are invalid.
func ParseTraceParent(s string) (TraceContext, bool) {
	if len(s) < 55 || (len(s) > 55 && (s[:2] == "00" || s[55] != '-')) {
		return TraceContext{}, false
	}
	if s[2] != '-' || s[35] != '-' || s[52] != '-' {
		return TraceContext{}, false
	}
	version, traceID, parentID, flags := s[:2], s[3:35], s[36:52], s[53:55]
	if !lowerHex(version) || version == "ff" || !lowerHex(traceID) || !lowerHex(parentID) || !lowerHex(flags) {
		return TraceContext{}, false
	}
	if allZero(traceID) || allZero(parentID) {
		return TraceContext{}, false
	}
	return TraceContext{TraceID: traceID, SpanID: parentID, Flags: flags}, true
}

// ValidTraceState checks a tracestate value: at most 512 bytes and 32
// list members, each key=value with the characters the specification allows.
func ValidTraceState(s string) bool {
	if s == "" || len(s) > 512 {
		return false
	}
	members := 0
	for m := range strings.SplitSeq(s, ",") {
		m = strings.Trim(m, " \t")
		if m == "" {
			continue // empty list members are allowed
		}
		members++
		k, v, ok := strings.Cut(m, "=")
		if !ok || !validStateKey(k) || !validStateValue(v) {
			return false
		}
	}
	return members > 0 && members <= 32
}

func validStateKey(k string) bool {
	if k == "" || len(k) > 256 {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '_' || c == '-' || c == '*' || c == '/' || c == '@') {
			return false
		}
	}
	return true
}

func validStateValue(v string) bool {
	if v == "" || len(v) > 256 || v[len(v)-1] == ' ' {
		return false
	}
	for i := 0; i < len(v); i++ {
		if c := v[i]; c < 0x20 || c > 0x7e || c == ',' || c == '=' {
			return false
		}
	}
	return true
}

func lowerHex(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; !(c >= '0' && c <= '9' || c >= 'a' && c <= 'f') {
			return false
		}
	}
	return true
}

func allZero(s string) bool { return strings.Trim(s, "0") == "" }

// newHex returns n random bytes as hex, never all zero. Trace ids need to be
// unique, not secret: math/rand/v2's per-thread generator is enough.
func newHex(n int) string {
	var b [16]byte
	for {
		for i := 0; i < n; i += 8 {
			v := rand.Uint64()
			for j := 0; j < 8 && i+j < n; j++ {
				b[i+j] = byte(v >> (8 * j))
			}
		}
		if s := hex.EncodeToString(b[:n]); !allZero(s) {
			return s
		}
	}
}
