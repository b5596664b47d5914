package middleware

import (
	"context"
	"net/http"
	"time"
)

// Info is what the middleware stack and the handlers learn about one
// request: handlers fill in Route, Mode and CorrelationID; RequestID is set
// by RequestID and Trace by Trace; Status and Bytes are recorded from the response. Logs (see
// ContextHandler), the access log and metrics read it.
//
// A handler sets its fields before it starts other goroutines with the
// request's context, and middleware reads them after the handler returned.
type Info struct {
	Route         string // configured route name
	Mode          string // sync, async or auto; "" off the configured routes
	CorrelationID string
	RequestID     string // the caller's X-Request-Id, set by RequestID
	Principal     string // the authenticated caller, set by Auth
	Trace         TraceContext
	Status        int
	Bytes         int64
	Start         time.Time // when WithInfo saw the request

	rec recorder // allocated with Info: one allocation per request, not two
	// held are the in-flight slots the request holds (InFlight), kept
	// past the handler by KeepInFlight.
	held    [2]chan struct{}
	nheld   int
	keepAll bool
	// traceParent is traced formatted, once, by the Trace middleware.
	traceParent string
	traced      TraceContext
}

// TraceParent returns Trace formatted as a traceparent header ("" when
// there is no trace context), without formatting it again when the Trace
// middleware did and it has not changed since.
func (i *Info) TraceParent() string {
	if i.traceParent != "" && i.Trace == i.traced {
		return i.traceParent
	}
	return i.Trace.TraceParent()
}

type infoKey struct{}

// WithInfo puts a fresh Info in the request's context and records the
// response's status and size in it. It is the outermost middleware.
func WithInfo(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		info := &Info{Start: time.Now()}
		info.rec = recorder{ResponseWriter: w, info: info}
		next.ServeHTTP(&info.rec, r.WithContext(context.WithValue(r.Context(), infoKey{}, info)))
	})
}

// StatusClientClosed labels a request whose client went away before any
// answer was written (nginx's 499).
const StatusClientClosed = 499

// statusOf returns the recorded status: 499 when nothing was written because
// the client is gone, 200 when nothing was written otherwise (net/http's).
func statusOf(r *http.Request, info *Info) int {
	switch {
	case info == nil:
		return http.StatusOK
	case info.Status != 0:
		return info.Status
	case r.Context().Err() != nil:
		return StatusClientClosed
	}
	return http.StatusOK
}

// InfoFrom returns the request's Info, or nil outside WithInfo.
func InfoFrom(ctx context.Context) *Info {
	info, _ := ctx.Value(infoKey{}).(*Info)
	return info
}

// recorder records the status and body size of a response.
type recorder struct {
	http.ResponseWriter
	info *Info
}

func (w *recorder) WriteHeader(code int) {
	if w.info.Status == 0 && code >= 200 {
		w.info.Status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *recorder) Write(b []byte) (int, error) {
	if w.info.Status == 0 {
		w.info.Status = http.StatusOK
	}
	n, err := w.ResponseWriter.Write(b)
	w.info.Bytes += int64(n)
	return n, err
}

// Unwrap lets http.ResponseController reach the connection (deadlines,
// flushing).
func (w *recorder) Unwrap() http.ResponseWriter { return w.ResponseWriter }
