package api_test

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/api"
	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/gateway"
)

// Problem details say nothing internal: the error chain goes to the log
// line carrying the same correlation id (issue 16, point 7).
func TestProblemDetailHidesTheError(t *testing.T) {
	for _, tc := range []struct {
		err error
		pt  api.ProblemType
	}{
		{fmt.Errorf("kafka.(*Client).Produce: dial tcp 127.0.0.1:19092: connect: connection refused: %w", gateway.ErrUnavailable), api.ProblemBrokerDown},
		{fmt.Errorf("correlation: idempotency store full: %w", gateway.ErrStoreFull), api.ProblemStoreFull},
		{fmt.Errorf("redis 127.0.0.1:6379: i/o timeout: %w", gateway.ErrStore), api.ProblemStoreDown},
	} {
		t.Run(tc.pt.Slug, func(t *testing.T) {
			var logs bytes.Buffer
			log := slog.New(middleware.ContextHandler(slog.NewTextHandler(&logs, nil)))
			gw := &stub{do: func(context.Context, *gateway.Request) (gateway.Outcome, error) { return gateway.Outcome{}, tc.err }}
			h := newHandler(t, gw, func(o *api.Options) { o.Logger = log })
			rec := serve(h, "POST", "/r", "x", nil)
			p := wantProblem(t, rec, tc.pt)
			internal := tc.err.Error()[:20]
			if p.CorrelationID == "" || p.Detail == "" || strings.Contains(rec.Body.String(), internal) || strings.Contains(rec.Body.String(), "127.0.0.1") {
				t.Fatalf("problem %s", rec.Body)
			}
			var line string
			for l := range strings.Lines(logs.String()) {
				if strings.Contains(l, "request failed") {
					line = l
				}
			}
			if !strings.Contains(line, "correlation_id="+p.CorrelationID) || !strings.Contains(line, internal) {
				t.Fatalf("no log line with the error and correlation id %s:\n%s", p.CorrelationID, logs.String())
			}
		})
	}
}
