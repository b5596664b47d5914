package scenario

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/syncgate/syncgate/cmd/syncgate/node"
	"github.com/syncgate/syncgate/loadtest"
)

// Connections is the closed-loop concurrency of the throughput aim.
const Connections = 64

type target struct {
	name    string
	url     string
	client  *http.Client
	srv     *server
	samples *loadtest.Samples
	// raw, when set, is a raw SDK request/reply loop measured instead of
	// an HTTP request: closed loop only (64 workers, interleaved with the
	// others, and 1 worker), compared as the floor of the target named vs
	// rather than with every target before it; aim, when > 0, is the
	// throughput ratio that target should reach.
	raw loadtest.Op
	vs  string
	aim float64
}

func echoTarget(name, url string) target {
	return target{name: name, url: url, client: loadtest.NewClient(Connections), samples: new(loadtest.Samples)}
}

func (t target) op() loadtest.Op {
	if t.raw != nil {
		return t.raw
	}
	return loadtest.Target{
		Client: t.client, Method: http.MethodPost, URL: t.url, Body: payload,
		Header: http.Header{"Content-Type": {"application/json"}}, Samples: t.samples,
	}.Op()
}

// sampleNotes says what the first answer of each error status was.
func sampleNotes(name string, s *loadtest.Samples) []string {
	var notes []string
	m := s.Get()
	codes := slices.Sorted(maps.Keys(m))
	for _, code := range codes {
		notes = append(notes, fmt.Sprintf("%s: the first %d said: `%s`", name, code, strings.Join(strings.Fields(m[code]), " ")))
	}
	return notes
}

type phases struct {
	warmup, closed, open time.Duration
	rounds               int
	rate                 float64
}

func throughputPhases(o Options) phases {
	return phases{
		warmup: o.dur(time.Second, 2*time.Second),
		closed: o.dur(1500*time.Millisecond, 5*time.Second),
		open:   o.dur(5*time.Second, 30*time.Second),
		rounds: o.pick(5, 7),
		rate:   float64(o.pick(1000, 2000)),
	}
}

// compareTargets measures every target closed loop (64 workers, rounds
// interleaved so that machine noise hits all alike) and open loop at one
// rate, and compares each with targets[0], the floor.
func compareTargets(ctx context.Context, o Options, rep *Report, ph phases, targets []target) error {
	closed := make([][]*loadtest.Result, len(targets))
	for round := range ph.rounds {
		warmup := ph.warmup
		if round > 0 {
			warmup = ph.warmup / 4 // connections and pools are warm already
		}
		for i, t := range targets {
			res, err := loadtest.Run(ctx, loadtest.Config{
				Name: fmt.Sprintf("%s round %d", t.name, round+1), Workers: Connections,
				Warmup: warmup, Duration: ph.closed, Timeout: 10 * time.Second, Progress: o.Progress,
			}, t.op())
			if err != nil {
				return err
			}
			closed[i] = append(closed[i], res)
		}
	}
	var merged, single []*loadtest.Result
	open := make([]*loadtest.Result, len(targets)) // nil for a raw loop
	for i, t := range targets {
		m := loadtest.Merge(fmt.Sprintf("%s, %d workers", t.name, Connections), closed[i]...)
		merged = append(merged, m)
		one, err := loadtest.Run(ctx, loadtest.Config{
			Name: t.name + ", 1 worker", Workers: 1,
			Warmup: ph.warmup, Duration: ph.closed, Timeout: 10 * time.Second, Progress: o.Progress,
		}, t.op())
		if err != nil {
			return err
		}
		single = append(single, one)
		if t.raw != nil {
			continue
		}
		res, err := loadtest.Run(ctx, loadtest.Config{
			Name: fmt.Sprintf("%s, %s req/s", t.name, trimFloat(ph.rate)), Rate: ph.rate,
			Warmup: ph.warmup, Duration: ph.open, Timeout: 10 * time.Second, Progress: o.Progress,
		}, t.op())
		if err != nil {
			return err
		}
		open[i] = res
	}
	rep.Results = append(rep.Results, merged...)
	rep.Results = append(rep.Results, single...)
	for _, r := range open {
		if r != nil {
			rep.Results = append(rep.Results, r)
		}
	}
	for i := 1; i < len(targets); i++ {
		for j := range i {
			if targets[i].raw != nil || targets[j].raw != nil {
				continue
			}
			floor := targets[j].name
			// The ratio is the median of the rounds' ratios: a burst of
			// noise on the machine spoils one round, not the figure.
			var ratios []float64
			var texts []string
			for r := range closed[i] {
				ratios = append(ratios, closed[i][r].Throughput/closed[j][r].Throughput)
				texts = append(texts, fmt.Sprintf("%.2f", ratios[r]))
			}
			c := compare(fmt.Sprintf("%s: throughput (ratio: median of %d interleaved rounds)", merged[i].Name, len(ratios)),
				merged[i].Throughput, merged[j].Name+": throughput", merged[j].Throughput, "req/s")
			c.Ratio = median(ratios)
			if j == 0 && strings.HasSuffix(targets[i].name, "memory") {
				c = c.atLeast(0.60)
			}
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s / %s throughput, round by round: %s.",
				targets[i].name, targets[j].name, strings.Join(texts, ", ")))
			rep.Comparisons = append(rep.Comparisons, c,
				compare(single[i].Name+": p50", single[i].Latency.P50, single[j].Name+": p50", single[j].Latency.P50, "ms"),
				compare(open[i].Name+": p50", open[i].Latency.P50, floor+": p50, same rate", open[j].Latency.P50, "ms"),
				compare(open[i].Name+": p99", open[i].Latency.P99, floor+": p99, same rate", open[j].Latency.P99, "ms"))
		}
	}
	for j, f := range targets {
		i := slices.IndexFunc(targets, func(t target) bool { return t.name == f.vs })
		if f.raw == nil || i < 0 {
			continue
		}
		var ratios []float64
		var texts []string
		for r := range closed[i] {
			ratios = append(ratios, closed[i][r].Throughput/closed[j][r].Throughput)
			texts = append(texts, fmt.Sprintf("%.2f", ratios[r]))
		}
		c := compare(fmt.Sprintf("%s: throughput (ratio: median of %d interleaved rounds)", merged[i].Name, len(ratios)),
			merged[i].Throughput, merged[j].Name+": throughput", merged[j].Throughput, "req/s")
		c.Ratio = median(ratios)
		if f.aim > 0 {
			c = c.atLeast(f.aim)
		}
		rep.Notes = append(rep.Notes, fmt.Sprintf("%s / %s throughput, round by round: %s.",
			targets[i].name, f.name, strings.Join(texts, ", ")))
		rep.Comparisons = append(rep.Comparisons, c,
			compare(single[i].Name+": p50", single[i].Latency.P50, single[j].Name+": p50", single[j].Latency.P50, "ms"),
			compare(single[i].Name+": p99", single[i].Latency.P99, single[j].Name+": p99", single[j].Latency.P99, "ms"))
	}
	names := func(rs []*loadtest.Result) []string {
		var out []string
		for _, r := range rs {
			if r != nil {
				out = append(out, r.Name)
			}
		}
		return out
	}
	rep.Plots = map[string][]string{
		"latency over time, open loop":   names(open),
		"latency percentiles, open loop": names(open),
	}
	for i, t := range targets {
		if aim, ok := p50Aims[strings.TrimPrefix(t.name, "gateway/")]; ok {
			rep.Comparisons = append(rep.Comparisons,
				compare(single[i].Name+": p50", single[i].Latency.P50, fmt.Sprintf("aim: %s ms", trimFloat(aim)), aim, "ms").atMost(1))
		}
	}
	for _, r := range rep.Results {
		if r.Errors > 0 || r.Status["200"] != r.Requests {
			rep.Notes = append(rep.Notes, fmt.Sprintf("%s: %d errors, statuses %s", r.Name, r.Errors, loadtest.StatusText(r.Status)))
		}
	}
	for _, t := range targets {
		rep.Notes = append(rep.Notes, sampleNotes(t.name, t.samples)...)
		if t.srv != nil && t.srv.node != nil {
			if w := t.srv.node.Gateway().Waiting(); w != 0 {
				rep.Notes = append(rep.Notes, fmt.Sprintf("%s: %d requests still waiting after the run", t.name, w))
			}
		}
	}
	return nil
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Clone(v)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// p50Aims are the backends' latency aims at concurrency 1 (their issues).
var p50Aims = map[string]float64{"kafka": 2, "rabbitmq": 1}

func trimFloat(v float64) string { return strings.TrimSuffix(fmt.Sprintf("%.1f", v), ".0") }

// Direct measures plain HTTP to the echo logic alone: the floor.
func Direct(ctx context.Context, o Options) (*Report, error) {
	d, err := startDirect()
	if err != nil {
		return nil, err
	}
	defer d.stop()
	rep := &Report{}
	ph := throughputPhases(o)
	ph.rounds = 1
	t := echoTarget("direct", d.base+"/echo")
	err = compareTargets(ctx, o, rep, ph, []target{t})
	return rep, err
}

// Memory measures the gateway over the in-memory broker against direct HTTP.
func Memory(ctx context.Context, o Options) (*Report, error) {
	return brokerScenario(ctx, o, "memory", nil)
}

// brokerScenario compares direct HTTP, the gateway over the memory broker
// and, when kind is another backend, the gateway over it (configured by
// setup, which may return a cleanup).
func brokerScenario(ctx context.Context, o Options, kind string, setup func(*node.Config) (func(), error)) (*Report, error) {
	rep := &Report{}
	d, err := startDirect()
	if err != nil {
		return nil, err
	}
	defer d.stop()
	targets := []target{echoTarget("direct", d.base+"/echo")}
	mem, err := startNode(nodeConfig("memory"))
	if err != nil {
		return nil, err
	}
	defer mem.stop()
	t := echoTarget("gateway/memory", mem.base+"/demo/echo")
	t.srv = mem
	targets = append(targets, t)
	if kind != "memory" {
		cfg := nodeConfig(kind)
		if setup != nil {
			cleanup, err := setup(&cfg)
			if err != nil {
				return nil, err
			}
			if cleanup != nil {
				defer cleanup()
			}
		}
		n, err := startNode(cfg)
		if err != nil {
			return nil, err
		}
		defer n.stop()
		t := echoTarget("gateway/"+kind, n.base+"/demo/echo")
		t.srv = n
		targets = append(targets, t)
		raws, cleanup, err := rawTargets(rep, kind, cfg, t.name)
		if err != nil {
			return nil, err
		}
		defer cleanup(rep)
		targets = append(targets, raws...)
	}
	err = compareTargets(ctx, o, rep, throughputPhases(o), targets)
	return rep, err
}
