package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stub is an api.Gateway whose answers the test chooses.
type stub struct {
	do     func(ctx context.Context, req *gateway.Request) (gateway.Outcome, error)
	result func(id string) (correlation.Result, error)
	await  func(ctx context.Context, id string, d time.Duration) (correlation.Result, error)
	cancel func(id string) error
	events func(ctx context.Context, id string, after int, d time.Duration) (correlation.Result, error)
}

func (s *stub) Watch(context.Context, string) {}

func (s *stub) Events(ctx context.Context, id, _ string, after int, d time.Duration) (correlation.Result, error) {
	if s.events == nil {
		return s.Await(ctx, id, "", d)
	}
	return s.events(ctx, id, after, d)
}

func (s *stub) Do(ctx context.Context, req *gateway.Request) (gateway.Outcome, error) {
	if s.do == nil {
		return gateway.Outcome{ID: req.ID, Reply: envelope.Reply{Body: req.Message.Body}}, nil
	}
	return s.do(ctx, req)
}

func (s *stub) Result(_ context.Context, id, _ string) (correlation.Result, error) {
	if s.result == nil {
		return correlation.Result{}, gateway.ErrNotFound
	}
	return s.result(id)
}

func (s *stub) Await(ctx context.Context, id, _ string, d time.Duration) (correlation.Result, error) {
	if s.await == nil {
		return s.Result(ctx, id, "")
	}
	return s.await(ctx, id, d)
}

func (s *stub) Cancel(_ context.Context, id, _ string) error {
	if s.cancel == nil {
		return gateway.ErrNotFound
	}
	return s.cancel(id)
}

func testRoute(path string, mode gateway.Mode) api.Route {
	return api.Route{Method: "POST", Path: path, MaxBody: 1024,
		Route: &gateway.Route{Name: strings.Trim(path, "/"), Destination: "d", Mode: mode, Timeout: time.Second}}
}

func newHandler(t *testing.T, gw api.Gateway, mod func(*api.Options)) http.Handler {
	t.Helper()
	o := api.Options{Gateway: gw, Logger: slog.New(slog.DiscardHandler),
		Routes: []api.Route{testRoute("/r", gateway.ModeAuto)}}
	if mod != nil {
		mod(&o)
	}
	h, err := api.New(o)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// serve runs one request through h in-process.
func serve(h http.Handler, method, target string, body string, header map[string]string) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, strings.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

// wantProblem checks that rec is a problem of type pt and returns it.
func wantProblem(t *testing.T, rec *httptest.ResponseRecorder, pt api.ProblemType) api.Problem {
	t.Helper()
	if rec.Code != pt.Status || rec.Header().Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %s %s, want a %d problem", rec.Code, rec.Header().Get("Content-Type"), rec.Body, pt.Status)
	}
	var p api.Problem
	if err := json.Unmarshal(rec.Body.Bytes(), &p); err != nil {
		t.Fatal(err)
	}
	if p.Type != pt.URI() || p.Title != pt.Title || p.Status != pt.Status {
		t.Fatalf("problem %+v, want %s", p, pt.URI())
	}
	return p
}

func TestCatalogueIsDocumented(t *testing.T) {
	doc, err := os.ReadFile("../docs/problems.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, pt := range api.Catalogue() {
		if seen[pt.Slug] {
			t.Errorf("%s twice in the catalogue", pt.Slug)
		}
		seen[pt.Slug] = true
		if !bytes.Contains(doc, []byte("`"+pt.URI()+"`")) {
			t.Errorf("%s is not in docs/problems.md", pt.URI())
		}
	}
}
