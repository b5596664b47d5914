package api

import (
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"
	"github.com/google/uuid"

	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/correlation"
)

// poll serves GET /v1/requests/{id}[?wait=5s]: 202 while pending (with the
// latest progress message, if any), the stored reply when done, 410 when
// cancelled, 404 when unknown or expired. With wait (a Go duration or
// whole seconds, capped by MaxPollWait) it answers as soon as the reply is
// in, or pending after wait. With Accept: text/event-stream it streams the
// request's events instead (stream).
func (s *server) poll(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	noteID(r, id)
	if wantsEventStream(r) {
		s.stream(w, r, id, middleware.Principal(r.Context()))
		return
	}
	wait, err := parseWait(r.URL.Query().Get("wait"), s.maxPollWait)
	if err != nil {
		WriteProblem(w, r, ProblemBadRequest, err.Error(), "")
		return
	}
	// Another principal's request answers as an unknown id does.
	principal := middleware.Principal(r.Context())
	var res correlation.Result
	if wait > 0 {
		res, err = s.gw.Await(r.Context(), id, principal, wait)
	} else {
		res, err = s.gw.Result(r.Context(), id, principal)
	}
	if err != nil {
		if r.Context().Err() != nil {
			return
		}
		s.writeRequestProblem(w, r, id, err)
		return
	}
	w.Header().Set(HeaderCorrelationID, id)
	if res.Delivery != nil {
		w.Header().Set(HeaderCallbackDelivery, deliveryHeader(res.Delivery))
	}
	switch res.State {
	case correlation.StateDone:
		s.linkPolledReply(r.Context(), res.Reply)
		writeReply(w, res.Reply)
	case correlation.StateCancelled:
		WriteProblem(w, r, ProblemRequestCancelled, "request "+id+" was cancelled", id)
	default:
		var latest *correlation.Progress
		if n := len(res.Progress); n > 0 {
			latest = &res.Progress[n-1]
		}
		writeAcceptedWith(w, id, s.retryAfter, latest, res.Queued)
	}
}

// cancel serves DELETE /v1/requests/{id}: 204 once cancelled (also when it
// was cancelled already), 409 when the reply is in, 404 when unknown.
func (s *server) cancel(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	noteID(r, id)
	if err := s.gw.Cancel(r.Context(), id, middleware.Principal(r.Context())); err != nil {
		s.writeRequestProblem(w, r, id, err)
		return
	}
	w.Header().Set(HeaderCorrelationID, id)
	w.WriteHeader(http.StatusNoContent)
}

func (s *server) writeRequestProblem(w http.ResponseWriter, r *http.Request, id string, err error) {
	pt := problemFor(err)
	detail := safeDetail(pt)
	cid := id
	if pt.Status >= 500 {
		s.log.WarnContext(r.Context(), "request control failed", slog.Any("error", err))
	}
	if pt == ProblemRequestNotFound {
		detail = "no request " + id + " is pending or stored here; results expire"
		cid = ""
	}
	WriteProblem(w, r, pt, detail, cid)
}

// parseWait reads ?wait=: "" (no wait), a Go duration ("5s", "1500ms") or
// whole seconds ("5"), capped by limit.
func parseWait(v string, limit time.Duration) (time.Duration, error) {
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		secs, serr := strconv.ParseUint(v, 10, 32)
		if serr != nil {
			return 0, fmt.Errorf("wait=%q is not a duration (5s) or whole seconds (5)", v)
		}
		d = time.Duration(secs) * time.Second
	}
	if d < 0 {
		return 0, fmt.Errorf("wait=%q is negative", v)
	}
	return min(d, limit), nil
}

// noteID logs id as the correlation id of r (a poll, a cancel, a
// callback's status) when it has the form of one.
func noteID(r *http.Request, id string) {
	if info := middleware.InfoFrom(r.Context()); info != nil && validID(id) {
		info.CorrelationID = id
	}
}

// validID reports whether id has the form of a correlation id (a UUID in
// its canonical form): only such an id is logged as correlation_id, not
// whatever a client put in the path.
func validID(id string) bool {
	if len(id) != 36 {
		return false
	}
	_, err := uuid.Parse(id)
	return err == nil
}
