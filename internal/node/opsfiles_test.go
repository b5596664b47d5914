package node_test

import (
	"encoding/json"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"
	"github.com/prometheus/prometheus/model/rulefmt"
	"github.com/prometheus/prometheus/promql/parser"

	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

const (
	alertsFile    = "../../ops/prometheus/syncgate-alerts.yml"
	dashboardFile = "../../ops/grafana/syncgate-dashboard.json"
)

// The operations files work with what a node exports: the alerting rules
// pass Prometheus's own rule parser (PromQL and templates), the
// dashboard's queries parse as PromQL, and every metric either uses is
// exported by a running node, standalone or in cluster mode, once traffic
// has touched it.
func TestOpsFiles(t *testing.T) {
	p := parser.NewParser(parser.Options{})
	groups, errs := rulefmt.ParseFile(alertsFile, false, model.UTF8Validation, p, slog.New(slog.DiscardHandler))
	if len(errs) > 0 {
		t.Fatalf("%s: %v", alertsFile, errs)
	}
	var exprs []string
	alerts := 0
	for _, g := range groups.Groups {
		for _, r := range g.Rules {
			exprs = append(exprs, r.Expr)
			if r.Alert != "" {
				alerts++
			}
		}
	}
	if alerts < 5 {
		t.Errorf("%d alerts, want the five the issue names at least", alerts)
	}
	var dash struct {
		Panels []struct {
			Title   string
			Targets []struct{ Expr string }
		}
	}
	raw, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &dash); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	// Grafana's variables, as Grafana substitutes them.
	grafana := strings.NewReplacer("$__rate_interval", "1m", "$job", ".*", "$instance", ".*")
	for _, pn := range dash.Panels {
		if len(pn.Targets) == 0 {
			t.Errorf("panel %q has no query", pn.Title)
		}
		for _, tg := range pn.Targets {
			exprs = append(exprs, grafana.Replace(tg.Expr))
		}
	}
	used := map[string]bool{}
	for _, e := range exprs {
		expr, err := p.ParseExpr(e)
		if err != nil {
			t.Errorf("%q: %v", e, err)
			continue
		}
		parser.Inspect(expr, func(n parser.Node, _ []parser.Node) error {
			if vs, ok := n.(*parser.VectorSelector); ok && vs.Name != "" {
				used[vs.Name] = true
			}
			return nil
		})
	}

	exported := map[string]bool{}
	collect := func(base string) {
		t.Helper()
		for name, f := range scrape(t, base) {
			exported[name] = true
			if f.GetType().String() == "HISTOGRAM" {
				for _, s := range []string{"_bucket", "_count", "_sum"} {
					exported[name+s] = true
				}
			}
		}
	}

	// Standalone, with the traffic that creates the labelled series: a
	// reply, a 504, a 202 polled and cancelled, a scatter-gather, a 429.
	cfg := testConfig()
	cfg.Routes = append(cfg.Routes, node.RouteConfig{Name: "limited", Method: "POST", Path: "/t/limited", Destination: "demo.echo",
		Mode: "sync", Timeout: 5 * time.Second, RateLimit: node.RouteRateLimitConfig{Rate: 1, Per: time.Minute, Burst: 1}},
		node.RouteConfig{Name: "hooked", Method: "POST", Path: "/t/hooked", Destination: "demo.echo", Mode: "async",
			Callback: &node.CallbackConfig{Allow: []string{"hooks.example.com"}, Secrets: []string{"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"}}})
	n := start(t, cfg)
	send(t, "POST", n.base+"/demo/echo", []byte("x"), nil)
	if r, _ := send(t, "POST", n.base+"/t/nobody", []byte("x"), nil); r.StatusCode != http.StatusGatewayTimeout {
		t.Fatalf("/t/nobody: %d", r.StatusCode)
	}
	r, _ := send(t, "POST", n.base+"/t/auto?ms=3000", []byte("x"), nil)
	send(t, "GET", n.base+r.Header.Get("Location"), nil, nil)
	send(t, "DELETE", n.base+r.Header.Get("Location"), nil, nil)
	if r, _ := send(t, "POST", n.base+"/demo/gather?ms=1", []byte("x"), nil); r.StatusCode != http.StatusOK {
		t.Fatalf("/demo/gather: %d", r.StatusCode)
	}
	send(t, "POST", n.base+"/t/limited", []byte("x"), nil)
	if r, _ := send(t, "POST", n.base+"/t/limited", []byte("x"), nil); r.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second /t/limited: %d, want 429", r.StatusCode)
	}
	collect(n.base)

	// Cluster mode (real Redis).
	testenv.RequireRedis(t)
	c := startCluster(t, clusterConfig(t, testenv.RedisAddr))
	send(t, "POST", c.base+"/demo/echo", []byte("x"), nil)
	collect(c.base)

	names := slices.Sorted(func(yield func(string) bool) {
		for k := range used {
			if !yield(k) {
				return
			}
		}
	})
	syncgate := regexp.MustCompile(`^syncgate_`)
	for _, name := range names {
		if !syncgate.MatchString(name) {
			t.Errorf("%s: not a syncgate metric", name)
		}
		if !exported[name] {
			t.Errorf("%s is used by the operations files but no node exported it", name)
		}
	}
	t.Logf("%d metrics used, all exported: %v", len(names), names)
}
