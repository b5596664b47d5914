package scenario

import (
	"context"
	"fmt"
	"net/http"
	"time"

	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/loadtest"
)

// AutoPoll measures the time to result of an auto route whose service is
// slower than the route's wait: the caller gets 202 and polls the Location
// until the reply is there. Its floor is the same service reached through a
// route that waits long enough to answer 200 on the held connection.
func AutoPoll(ctx context.Context, o Options) (*Report, error) {
	service := 200 * time.Millisecond
	wait := 50 * time.Millisecond
	interval := 50 * time.Millisecond
	rate := float64(o.pick(50, 200))
	cfg := nodeConfig("memory")
	cfg.Results.RetryAfter = time.Second
	cfg.Routes = append(cfg.Routes,
		node.RouteConfig{Name: "lt-auto", Method: "POST", Path: "/lt/auto", Destination: demo.SleepDestination,
			Mode: "auto", Wait: wait, Timeout: 30 * time.Second},
		node.RouteConfig{Name: "lt-held", Method: "POST", Path: "/lt/held", Destination: demo.SleepDestination,
			Mode: "auto", Wait: 10 * time.Second, Timeout: 30 * time.Second},
	)
	n, err := startNode(cfg)
	if err != nil {
		return nil, err
	}
	defer n.stop()
	client := loadtest.NewClient(1024)
	query := fmt.Sprintf("?ms=%d", service.Milliseconds())
	rc := func(name string) loadtest.Config {
		return loadtest.Config{
			Name: name, Rate: rate, Warmup: o.dur(time.Second, 2*time.Second), Duration: o.dur(5*time.Second, 30*time.Second),
			Timeout: 20 * time.Second, Progress: o.Progress,
		}
	}
	mk := func(path string) loadtest.Target {
		return loadtest.Target{Client: client, Method: http.MethodPost, URL: n.base + path + query, Body: payload,
			Header: http.Header{"Content-Type": {"application/json"}}}
	}
	held, err := loadtest.Run(ctx, rc(fmt.Sprintf("held 200 (service %s)", service)), mk("/lt/held").Op())
	if err != nil {
		return nil, err
	}
	var stats loadtest.PollStats
	polled, err := loadtest.Run(ctx, rc(fmt.Sprintf("202 + poll every %s (wait %s)", interval, wait)),
		mk("/lt/auto").PollOp(interval, 1000, &stats))
	if err != nil {
		return nil, err
	}
	rep := &Report{Results: []*loadtest.Result{held, polled}}
	// The service's own time is a floor no route can beat.
	rep.Comparisons = append(rep.Comparisons,
		compare(polled.Name+": p50 time to result", polled.Latency.P50, held.Name+": p50", held.Latency.P50, "ms"),
		compare(polled.Name+": p99 time to result", polled.Latency.P99, held.Name+": p99", held.Latency.P99, "ms"),
		compare(held.Name+": p50", held.Latency.P50, "service time (sleep)", float64(service.Milliseconds()), "ms"),
	)
	total := stats.Accepted.Load()
	if total > 0 {
		rep.Notes = append(rep.Notes, fmt.Sprintf("%d of the polled requests were answered 202 first (warm-up included), %.1f polls each on average; poll interval %s (Retry-After says %s: a client honouring it waits longer).",
			total, float64(stats.Polls.Load())/float64(total), interval, cfg.Results.RetryAfter))
	}
	for _, r := range rep.Results {
		if r.Errors > 0 || r.Status["200"] != r.Requests {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: %d errors, statuses %s", r.Name, r.Errors, loadtest.StatusText(r.Status)))
		}
	}
	rep.Plots = map[string][]string{
		"time to result over time":   {held.Name, polled.Name},
		"time to result percentiles": {held.Name, polled.Name},
	}
	return rep, nil
}
