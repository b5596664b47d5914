package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
	"github.com/syncgate/syncgate/push"
	"github.com/syncgate/syncgate/tap"
)

// HeaderIdempotentReplayed marks an answer that is the outcome of an earlier
// request with the same Idempotency-Key.
const HeaderIdempotentReplayed = "Idempotent-Replayed"

func (s *server) routeHandler(rt Route) http.HandlerFunc {
	forward := make([]string, 0, len(rt.ForwardHeaders))
	for _, h := range rt.ForwardHeaders {
		forward = append(forward, http.CanonicalHeaderKey(h))
	}
	mode := string(rt.Route.Mode)
	return func(w http.ResponseWriter, r *http.Request) {
		// A request waits for its reply inside s.gw.Do, on this stack, and
		// thousands may wait at once: what is needed before Do and after it
		// lives in frames of their own (request, answer), so that the
		// waiting stack holds little beyond the request Do is given
		// (issue 17).
		info := middleware.InfoFrom(r.Context()) // nil without the stack (benchmarks)
		var req gateway.Request
		if !s.request(w, r, &rt, mode, forward, info, &req) {
			return
		}
		out, err := s.gw.Do(r.Context(), &req)
		s.traceReply(r.Context(), &out)
		s.answer(w, r, info, req.ID, &out, err)
		if rt.Tap != nil {
			s.tap(r, &rt, info, &req, &out, err)
		}
	}
}

// tap records the exchange on the route's tap: off the waiting stack
// (it runs after the answer), and without copying the bodies.
//
//go:noinline
func (s *server) tap(r *http.Request, rt *Route, info *middleware.Info, req *gateway.Request, out *gateway.Outcome, err error) {
	x := tap.Exchange{
		Node: rt.Node, Route: rt.Route.Name, CorrelationID: out.ID, Principal: req.Principal,
		Request: tap.Capture(r, req.Message.Body, rt.TapRedact, rt.TapMaxBody),
	}
	if x.CorrelationID == "" {
		x.CorrelationID = req.ID
	}
	now := time.Now()
	if info != nil {
		x.Time, x.RequestID = info.Start, info.RequestID
	}
	if x.Time.IsZero() {
		x.Time = now
	}
	x.DurationMS = float64(now.Sub(x.Time).Microseconds()) / 1000
	switch {
	case err != nil:
		pt := problemFor(err)
		if r.Context().Err() != nil {
			pt = ProblemType{Slug: "client-closed", Status: middleware.StatusClientClosed}
		}
		x.Status, x.Outcome = pt.Status, pt.Slug
	case out.Accepted && out.Queued:
		x.Status, x.Outcome = http.StatusAccepted, "queued"
	case out.Accepted:
		x.Status, x.Outcome = http.StatusAccepted, "accepted"
	default:
		rep := out.Reply
		x.Status, x.Outcome = rep.StatusCode(), "reply"
		x.Reply = &tap.Reply{Status: rep.StatusCode(), ContentType: rep.ContentType, Header: rep.Header}
		x.Reply.Body, x.Reply.BodyTruncated = tap.CapBody(rep.Body, rt.TapMaxBody)
		if !out.Replied.IsZero() && !out.Sent.IsZero() {
			x.BrokerMS = float64(out.Replied.Sub(out.Sent).Microseconds()) / 1000
		}
	}
	rt.Tap.Record(x)
}

// request reads the gateway request of rt from r into req; on failure it
// answers with a problem and reports false.
//
//go:noinline
func (s *server) request(w http.ResponseWriter, r *http.Request, rt *Route, mode string, forward []string, info *middleware.Info, req *gateway.Request) bool {
	if info == nil {
		info = &middleware.Info{} // served without the stack (benchmarks)
	}
	id := correlation.NewID()
	info.Route, info.Mode, info.CorrelationID = rt.Route.Name, mode, id
	// Incoming header keys are canonical (net/http makes them so), and so
	// are these (TestHeaderKeysCanonical): indexing the map skips
	// canonicalizing the key again on every request.
	key, err := idempotencyKey(r.Header[headerIdempotencyKey])
	if err != nil {
		WriteProblem(w, r, ProblemKeyInvalid, err.Error(), id)
		return false
	}
	body, pt, detail := s.readBody(w, r, rt.MaxBody)
	if pt != nil {
		WriteProblem(w, r, *pt, detail, id)
		return false
	}
	var callback string
	if v := r.Header[HeaderCallbackURL]; len(v) > 0 { // canonical: see routeHandler
		if callback, err = checkCallback(rt, v); err != nil {
			WriteProblem(w, r, ProblemCallbackRefused, err.Error(), id)
			return false
		}
	}
	var msgKey string
	if rt.Key != nil {
		if msgKey, err = rt.Key.Expand(r, body); err != nil {
			WriteProblem(w, r, ProblemMessageKey, err.Error(), id)
			return false
		}
	}
	*req = gateway.Request{
		Route: rt.Route, ID: id, Prefer: parsePrefer(r.Header[headerPrefer]),
		Principal: middleware.Principal(r.Context()), Callback: callback,
		Message: envelope.Request{
			ContentType:    first(r.Header[headerContentType]),
			Method:         r.Method,
			Path:           r.URL.Path,
			Query:          r.URL.RawQuery,
			TraceParent:    info.TraceParent(),
			TraceState:     info.Trace.State,
			IdempotencyKey: key,
			Key:            msgKey,
			Body:           body,
		},
	}
	for _, name := range forward {
		if v := r.Header[name]; len(v) > 0 { // canonical: see routeHandler
			if req.Message.Header == nil {
				req.Message.Header = make(map[string]string, len(forward))
			}
			req.Message.Header[name] = strings.Join(v, ", ")
		}
	}
	return true
}

// answer writes the outcome of the request id.
//
//go:noinline
func (s *server) answer(w http.ResponseWriter, r *http.Request, info *middleware.Info, id string, out *gateway.Outcome, err error) {
	if out.ID != "" {
		id = out.ID // an idempotent retry answers as the first request
		if info != nil {
			info.CorrelationID = id
		}
	}
	h := w.Header()
	if out.PreferenceApplied != "" {
		h.Set("Preference-Applied", out.PreferenceApplied)
	}
	if out.Attached {
		h.Set(HeaderIdempotentReplayed, "true")
	}
	h[HeaderCorrelationID] = []string{id} // canonical (TestHeaderKeysCanonical)
	switch {
	case err != nil:
		if r.Context().Err() != nil {
			return // the client is gone: nobody to answer
		}
		pt := problemFor(err)
		// The error stays in the log (with the correlation id); the
		// caller gets the problem's safe detail.
		if pt.Status >= 500 {
			s.log.WarnContext(r.Context(), "request failed", slog.Any("error", err))
		} else {
			s.log.DebugContext(r.Context(), "request refused", slog.Any("error", err))
		}
		if pt == ProblemStoreFull || pt == ProblemOutboxFull {
			h.Set("Retry-After", retryAfterSeconds(s.retryAfter))
		}
		WriteProblem(w, r, pt, safeDetail(pt), id)
	case out.Accepted:
		writeAccepted(w, id, out.RetryAfter, out.Queued)
	default:
		writeReply(w, out.Reply)
	}
}

// first returns the first of a header's values, or "" (Header.Get
// without canonicalizing the key).
func first(values []string) string {
	if len(values) == 0 {
		return ""
	}
	return values[0]
}

// readBody reads the body within the route's size limit and the body
// timeout; on failure it returns the problem to answer.
func (s *server) readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, *ProblemType, string) {
	if r.ContentLength > limit {
		// Refuse before reading, so an Expect: 100-continue client never
		// sends the body.
		return nil, &ProblemBodyTooLarge, fmt.Sprintf("the body exceeds %d bytes", limit)
	}
	if r.ContentLength == 0 {
		return nil, nil, ""
	}
	var rc *http.ResponseController
	if s.bodyTimeout > 0 || s.abortUploads != nil {
		rc = http.NewResponseController(w)
		var deadline time.Time
		if s.bodyTimeout > 0 {
			deadline = time.Now().Add(s.bodyTimeout)
		}
		if rc.SetReadDeadline(deadline) != nil {
			rc = nil // not supported by this writer
		}
	}
	var aborted atomic.Bool
	if rc != nil && s.abortUploads != nil {
		// At the end of a shutdown's drain an upload still in progress is
		// cut (its read fails at once) and answered 503, so that the node
		// exits within its drain timeout rather than waiting on the client.
		defer context.AfterFunc(s.abortUploads, func() {
			aborted.Store(true)
			_ = rc.SetReadDeadline(time.Now())
		})()
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if rc != nil && err == nil {
		// Lift the deadline for the next request on the connection. Not on
		// error: net/http then discards the unread body, which must not
		// wait for a client that stalled.
		_ = rc.SetReadDeadline(time.Time{})
	}
	if err != nil {
		if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
			return nil, &ProblemBodyTooLarge, fmt.Sprintf("the body exceeds %d bytes", mbe.Limit)
		}
		if errors.Is(err, os.ErrDeadlineExceeded) && aborted.Load() {
			return nil, &ProblemShuttingDown, "the gateway is shutting down; the body was not read in full: retry"
		}
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, &ProblemBodyTimeout, fmt.Sprintf("the body took longer than %s", s.bodyTimeout)
		}
		s.log.DebugContext(r.Context(), "reading the body failed", slog.Any("error", err))
		return nil, &ProblemBadRequest, "the request body could not be read in full"
	}
	return body, nil, ""
}

// MaxIdempotencyKey bounds an accepted Idempotency-Key.
const MaxIdempotencyKey = 255

// idempotencyKey reads the Idempotency-Key header: a structured-field string
// ("...", as the draft defines it) or, leniently, a bare token; at most
// MaxIdempotencyKey visible ASCII characters. "" when absent.
func idempotencyKey(values []string) (string, error) {
	switch len(values) {
	case 0:
		return "", nil
	case 1:
	default:
		return "", errors.New("more than one Idempotency-Key header")
	}
	k := strings.TrimSpace(values[0])
	if len(k) >= 2 && k[0] == '"' && k[len(k)-1] == '"' {
		k = k[1 : len(k)-1]
	}
	if k == "" || len(k) > MaxIdempotencyKey {
		return "", fmt.Errorf("an Idempotency-Key has 1 to %d characters", MaxIdempotencyKey)
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e || k[i] == '"' || k[i] == '\\' {
			return "", errors.New("an Idempotency-Key holds visible ASCII characters only")
		}
	}
	return k, nil
}

// pendingBody is the JSON body of a 202 answer.
type pendingBody struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Location string `json:"location"`
	// Progress is the latest progress message of the request (polls).
	Progress *push.Progress `json:"progress,omitempty"`
}

func writeAccepted(w http.ResponseWriter, id string, retryAfter time.Duration, queued bool) {
	writeAcceptedWith(w, id, retryAfter, nil, queued)
}

// StatusQueued is the status of a 202's body while the request waits in
// the outbox for the broker (else it is "pending").
const StatusQueued = "queued"

// writeAcceptedWith is writeAccepted with the request's latest progress
// message (nil: none).
func writeAcceptedWith(w http.ResponseWriter, id string, retryAfter time.Duration, progress *correlation.Progress, queued bool) {
	loc := PollPath + id
	pb := pendingBody{ID: id, Status: correlation.StatePending.String(), Location: loc}
	if queued {
		pb.Status = StatusQueued
	}
	if progress != nil {
		pb.Progress = push.NewProgress(*progress)
	}
	body, _ := json.Marshal(pb)
	h := w.Header()
	h.Set("Location", loc)
	h.Set("Retry-After", strconv.FormatInt(int64(max(1, (retryAfter+time.Second-1)/time.Second)), 10))
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(body)
}
