package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"time"

	"github.com/go-chi/chi/v5"

	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/push/webhook"
)

// HeaderCallbackURL names the URL a request's reply is delivered to, signed
// (Standard Webhooks), if the request is answered 202; on routes with a
// callback section only.
const HeaderCallbackURL = "Callback-Url"

// HeaderCallbackDelivery, on a poll, tells how the delivery of the
// request's callback stands: "pending; attempts=2; status=503".
const HeaderCallbackDelivery = "Callback-Delivery"

// MaxCallbackURL bounds a Callback-Url.
const MaxCallbackURL = 2048

// checkCallback checks a request's Callback-Url values against its route:
// one URL, of a route that takes callbacks, within its guard's allow list,
// not a literal non-public address unless allowed. Names are checked
// again when the delivery dials them (after DNS, on every redirect).
func checkCallback(rt *Route, values []string) (string, error) {
	switch {
	case rt.Callback == nil:
		return "", fmt.Errorf("route %s takes no callbacks", rt.Route.Name)
	case len(values) > 1:
		return "", errors.New("more than one Callback-Url header")
	case len(values[0]) > MaxCallbackURL:
		return "", fmt.Errorf("a Callback-Url has at most %d characters", MaxCallbackURL)
	}
	u, err := rt.Callback.CheckURL(values[0])
	if err != nil {
		return "", err
	}
	if a, err := netip.ParseAddr(u.Hostname()); err == nil && !rt.Callback.AllowPrivate && !webhook.Public(a.Unmap()) {
		return "", fmt.Errorf("%s is not a public address", a)
	}
	return u.String(), nil
}

// deliveryHeader is the Callback-Delivery value of d.
func deliveryHeader(d *correlation.Delivery) string {
	v := string(d.State) + "; attempts=" + strconv.Itoa(d.Count)
	if n := len(d.Attempts); n > 0 && d.Attempts[n-1].Status != 0 {
		v += "; status=" + strconv.Itoa(d.Attempts[n-1].Status)
	}
	return v
}

// callbackBody is the answer of GET /v1/requests/{id}/callback.
type callbackBody struct {
	ID       string                `json:"id"`
	URL      string                `json:"url"`
	State    string                `json:"state"`
	Until    time.Time             `json:"until"`
	Count    int                   `json:"attempt_count"`
	Attempts []correlation.Attempt `json:"attempts"`
}

// callbackStatus serves GET /v1/requests/{id}/callback: the request's
// callback and its latest attempts (status, time, error), as its principal
// sees it.
func (s *server) callbackStatus(w http.ResponseWriter, r *http.Request) {
	id := chi.URLParam(r, "id")
	noteID(r, id)
	res, err := s.gw.Result(r.Context(), id, middleware.Principal(r.Context()))
	if err != nil && !errors.Is(err, correlation.ErrCancelled) {
		if r.Context().Err() == nil {
			s.writeRequestProblem(w, r, id, err)
		}
		return
	}
	d := res.Delivery
	if d == nil {
		WriteProblem(w, r, ProblemNoCallback, "request "+id+" has no callback", id)
		return
	}
	attempts := d.Attempts
	if attempts == nil {
		attempts = []correlation.Attempt{}
	}
	body, _ := json.Marshal(callbackBody{ID: id, URL: d.URL, State: string(d.State), Until: d.Until, Count: d.Count, Attempts: attempts})
	h := w.Header()
	h.Set(HeaderCorrelationID, id)
	h.Set("Content-Type", "application/json")
	h.Set(HeaderCallbackDelivery, deliveryHeader(d))
	_, _ = w.Write(body)
}
