package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

func (s *server) routeHandler(rt Route) http.HandlerFunc {
	forward := make([]string, 0, len(rt.ForwardHeaders))
	for _, h := range rt.ForwardHeaders {
		forward = append(forward, http.CanonicalHeaderKey(h))
	}
	return func(w http.ResponseWriter, r *http.Request) {
		id := correlation.NewID()
		if r.ContentLength > rt.MaxBody {
			// Refuse before reading, so an Expect: 100-continue client never
			// sends the body.
			WriteProblem(w, r, ProblemBodyTooLarge, fmt.Sprintf("the body exceeds %d bytes", rt.MaxBody), id)
			return
		}
		body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, rt.MaxBody))
		if err != nil {
			if mbe, ok := errors.AsType[*http.MaxBytesError](err); ok {
				WriteProblem(w, r, ProblemBodyTooLarge, fmt.Sprintf("the body exceeds %d bytes", mbe.Limit), id)
				return
			}
			WriteProblem(w, r, ProblemBadRequest, "reading the body: "+err.Error(), id)
			return
		}
		msg := envelope.Request{
			ContentType: r.Header.Get("Content-Type"),
			Method:      r.Method,
			Path:        r.URL.Path,
			Query:       r.URL.RawQuery,
			TraceParent: r.Header.Get("Traceparent"),
			TraceState:  r.Header.Get("Tracestate"),
			Body:        body,
		}
		for _, name := range forward {
			if v := r.Header.Values(name); len(v) > 0 {
				if msg.Header == nil {
					msg.Header = make(map[string]string, len(forward))
				}
				msg.Header[name] = strings.Join(v, ", ")
			}
		}
		out, err := s.gw.Do(r.Context(), gateway.Request{
			Route: rt.Route, ID: id, Message: msg, Prefer: parsePrefer(r.Header.Values("Prefer")),
		})
		if out.PreferenceApplied != "" {
			w.Header().Set("Preference-Applied", out.PreferenceApplied)
		}
		w.Header().Set(HeaderCorrelationID, id)
		switch {
		case err != nil:
			if r.Context().Err() != nil {
				return // the client is gone: nobody to answer
			}
			pt := problemFor(err)
			if pt.Status >= 500 {
				s.log.WarnContext(r.Context(), "request failed", slog.String("correlation_id", id),
					slog.String("route", rt.Route.Name), slog.Any("error", err))
			}
			WriteProblem(w, r, pt, err.Error(), id)
		case out.Accepted:
			writeAccepted(w, id, out.RetryAfter)
		default:
			writeReply(w, out.Reply)
		}
	}
}

// pendingBody is the JSON body of a 202 answer.
type pendingBody struct {
	ID       string `json:"id"`
	Status   string `json:"status"`
	Location string `json:"location"`
}

func writeAccepted(w http.ResponseWriter, id string, retryAfter time.Duration) {
	loc := PollPath + id
	body, _ := json.Marshal(pendingBody{ID: id, Status: correlation.StatePending.String(), Location: loc})
	h := w.Header()
	h.Set("Location", loc)
	h.Set("Retry-After", strconv.FormatInt(int64(max(1, (retryAfter+time.Second-1)/time.Second)), 10))
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(body)
}

func (s *server) poll(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	res, err := s.gw.Result(r.Context(), id)
	if err != nil {
		pt := problemFor(err)
		detail := err.Error()
		if pt == ProblemRequestNotFound {
			detail = "no request " + id + " is pending or stored here; results expire"
		}
		WriteProblem(w, r, pt, detail, "")
		return
	}
	w.Header().Set(HeaderCorrelationID, id)
	if res.State != correlation.StateDone {
		writeAccepted(w, id, s.retryAfter)
		return
	}
	writeReply(w, res.Reply)
}
