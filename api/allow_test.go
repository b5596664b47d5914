package api_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/api"
)

// 405 lists the methods the path allows (RFC 9110 §15.5.6).
func TestMethodNotAllowedHasAllow(t *testing.T) {
	h := newHandler(t, &stub{}, func(o *api.Options) {
		o.Routes = append(o.Routes, api.Route{Method: "PUT", Path: "/r", MaxBody: 1, Route: o.Routes[0].Route})
	})
	for target, want := range map[string][]string{
		"/r":                  {"POST", "PUT"},
		api.PollPath + someID: {"DELETE", "GET"},
		"/healthz":            {"GET"},
	} {
		rec := serve(h, "PATCH", target, "", nil)
		wantProblem(t, rec, api.ProblemMethodNotAllowed)
		got := splitList(strings.Join(rec.Header().Values("Allow"), ","))
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("PATCH %s: Allow = %q, want %q", target, rec.Header().Values("Allow"), want)
		}
	}
}

func splitList(s string) []string {
	parts := strings.Split(s, ",")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(p)
	}
	return parts
}
