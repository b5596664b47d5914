package scenario

import (
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/syncgate/syncgate/internal/node"
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
	// backend is the broker a gateway target runs over: its p50Aims key.
	backend string
	// raw, when set, is a raw SDK request/reply loop measured instead of
	// an HTTP request: closed loop only (64 workers and 1 worker, in the
	// interleaved rounds), compared as the floor of the targets named in
	// vs rather than with every target before it; aim, when > 0, is the
	// throughput ratio those targets should reach; ceiling adds the row
	// that says what the machine allows against this floor.
	raw     loadtest.Op
	vs      []string
	aim     float64
	ceiling bool
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
	// minSingle is the shortest 1-worker run of a round.
	minSingle time.Duration
	rounds    int
	rate      float64
}

func throughputPhases(o Options) phases {
	return phases{
		warmup: o.dur(time.Second, 2*time.Second),
		closed: o.dur(1500*time.Millisecond, 5*time.Second),
		open:   o.dur(5*time.Second, 30*time.Second),
		// A few hundred requests at ~2 ms each: fewer make a round's p50,
		// and so its ratio, too coarse to compare.
		minSingle: o.dur(500*time.Millisecond, 500*time.Millisecond),
		rounds:    o.pick(5, 7),
		rate:      float64(o.pick(1000, 2000)),
	}
}

// single is the length of one round's 1-worker run: ph.closed, what one
// uninterleaved 1-worker run took, split across the rounds, but no shorter
// than ph.minSingle.
func (ph phases) single() time.Duration {
	return max(ph.closed/time.Duration(max(ph.rounds, 1)), ph.minSingle)
}

// warmups are the warm-ups of a round's 64-worker and 1-worker runs. The
// first round's are full; after it connections and pools are warm, and a
// target that ran moments ago needs only a short run to get going again
// (at 1 worker an eighth of the warm-up is still 60 requests or more).
func (ph phases) warmups(round int) (closed, single time.Duration) {
	if round == 0 {
		return ph.warmup, ph.warmup
	}
	return ph.warmup / 4, ph.warmup / 8
}

// measured is what compareTargets measured, indexed like its targets.
type measured struct {
	closedRounds, singleRounds [][]*loadtest.Result // 64 workers and 1 worker, round by round
	closed, single             []*loadtest.Result   // the same, rounds merged
	open                       []*loadtest.Result   // nil for a raw loop
}

// compareTargets measures every target closed loop (64 workers and 1
// worker, in rounds interleaved so that machine noise hits all alike) and
// every HTTP target open loop at one rate; it compares each HTTP target
// with those before it, targets[0] being the floor, and each raw loop with
// the gateway targets it is the floor of.
func compareTargets(ctx context.Context, o Options, rep *Report, ph phases, targets []target) error {
	m, err := measure(ctx, o, ph, targets)
	if err != nil {
		return err
	}
	rep.Results = append(rep.Results, m.closed...)
	rep.Results = append(rep.Results, m.single...)
	for _, r := range m.open {
		if r != nil {
			rep.Results = append(rep.Results, r)
		}
	}
	for i := 1; i < len(targets); i++ {
		for j := range i {
			if targets[i].raw != nil || targets[j].raw != nil {
				continue
			}
			tput, p50, note := m.closedVs(targets, i, j)
			if j == 0 && strings.HasSuffix(targets[i].name, "memory") {
				tput = tput.atLeast(0.60)
			}
			floor := targets[j].name
			rep.Notes = append(rep.Notes, note)
			rep.Comparisons = append(rep.Comparisons, tput, p50,
				compare(m.open[i].Name+": p50", m.open[i].Latency.P50, floor+": p50, same rate", m.open[j].Latency.P50, "ms"),
				compare(m.open[i].Name+": p99", m.open[i].Latency.P99, floor+": p99, same rate", m.open[j].Latency.P99, "ms"))
		}
	}
	for j, f := range targets {
		if f.raw == nil {
			continue
		}
		for _, vs := range f.vs {
			i := slices.IndexFunc(targets, func(t target) bool { return t.name == vs })
			if i < 0 {
				continue
			}
			tput, p50, note := m.closedVs(targets, i, j)
			if f.aim > 0 {
				tput = tput.atLeast(f.aim)
			}
			rep.Notes = append(rep.Notes, note)
			rep.Comparisons = append(rep.Comparisons, tput, p50,
				compare(m.single[i].Name+": p99", m.single[i].Latency.P99, m.single[j].Name+": p99", m.single[j].Latency.P99, "ms"))
		}
		if mem := slices.IndexFunc(targets, func(t target) bool { return t.backend == "memory" }); f.ceiling && mem >= 0 {
			c, note := m.ceiling(targets, mem, j)
			rep.Comparisons = append(rep.Comparisons, c)
			rep.Notes = append(rep.Notes, note)
		}
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
		"latency over time, open loop":   names(m.open),
		"latency percentiles, open loop": names(m.open),
	}
	for i, t := range targets {
		if aim, ok := p50Aims[t.backend]; ok {
			rep.Comparisons = append(rep.Comparisons,
				compare(m.single[i].Name+": p50", m.single[i].Latency.P50, fmt.Sprintf("aim: %s ms", trimFloat(aim)), aim, "ms").atMost(1))
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

// measure runs the closed-loop rounds, merges them per target, then runs
// the HTTP targets open loop.
func measure(ctx context.Context, o Options, ph phases, targets []target) (*measured, error) {
	m := &measured{
		closedRounds: make([][]*loadtest.Result, len(targets)),
		singleRounds: make([][]*loadtest.Result, len(targets)),
		open:         make([]*loadtest.Result, len(targets)),
	}
	for round := range ph.rounds {
		if err := m.runRound(ctx, o, ph, targets, round); err != nil {
			return nil, err
		}
	}
	for i, t := range targets {
		m.closed = append(m.closed, loadtest.Merge(fmt.Sprintf("%s, %d workers", t.name, Connections), m.closedRounds[i]...))
		m.single = append(m.single, loadtest.Merge(t.name+", 1 worker", m.singleRounds[i]...))
		if t.raw != nil {
			continue
		}
		res, err := loadtest.Run(ctx, loadtest.Config{
			Name: fmt.Sprintf("%s, %s req/s", t.name, trimFloat(ph.rate)), Rate: ph.rate,
			Warmup: ph.warmup, Duration: ph.open, Timeout: 10 * time.Second, Progress: o.Progress,
		}, t.op())
		if err != nil {
			return nil, err
		}
		m.open[i] = res
	}
	return m, nil
}

// runRound runs every target with 64 workers, then every target with 1
// worker. The 1-worker runs come after all the 64-worker ones rather than
// each right after its own, which would hand the tail of a target's burst
// (the broker's disk writes, garbage collection) to that target alone, the
// heavier the target the more; and their order rotates from round to round
// so that the slot right after the last burst falls on another target each
// round, which the median of the rounds' ratios then discounts.
func (m *measured) runRound(ctx context.Context, o Options, ph phases, targets []target, round int) error {
	closedWarmup, singleWarmup := ph.warmups(round)
	for i, t := range targets {
		res, err := loadtest.Run(ctx, loadtest.Config{
			Name: fmt.Sprintf("%s round %d", t.name, round+1), Workers: Connections,
			Warmup: closedWarmup, Duration: ph.closed, Timeout: 10 * time.Second, Progress: o.Progress,
		}, t.op())
		if err != nil {
			return err
		}
		m.closedRounds[i] = append(m.closedRounds[i], res)
	}
	for k := range targets {
		i := (k + round) % len(targets)
		t := targets[i]
		res, err := loadtest.Run(ctx, loadtest.Config{
			Name: fmt.Sprintf("%s, 1 worker, round %d", t.name, round+1), Workers: 1,
			Warmup: singleWarmup, Duration: ph.single(), Timeout: 10 * time.Second, Progress: o.Progress,
		}, t.op())
		if err != nil {
			return err
		}
		m.singleRounds[i] = append(m.singleRounds[i], res)
	}
	return nil
}

// closedVs compares target i with target j closed loop: throughput with 64
// workers and p50 with 1 worker, the merged figures, each ratio the median
// of the rounds' ratios (a burst of noise on the machine spoils one round,
// not the figure). note gives those ratios round by round.
func (m *measured) closedVs(targets []target, i, j int) (tput, p50 Comparison, note string) {
	tput, tputs := vsRounds(m.closed[i], m.closed[j], m.closedRounds[i], m.closedRounds[j], "throughput", "req/s",
		func(r *loadtest.Result) float64 { return r.Throughput })
	p50, p50s := vsRounds(m.single[i], m.single[j], m.singleRounds[i], m.singleRounds[j], "p50", "ms",
		func(r *loadtest.Result) float64 { return r.Latency.P50 })
	note = fmt.Sprintf("%s / %s, round by round: throughput (%d workers) %s; p50 (1 worker) %s.",
		targets[i].name, targets[j].name, Connections, tputs, p50s)
	return tput, p50, note
}

// ceiling is the highest throughput ratio a gateway over a broker can
// reach against the raw loop j on this machine, where the load generator,
// the gateway, the service and the broker share the CPUs: a request through
// such a gateway costs at least what one through gateway/memory (target mem:
// HTTP in and out, the gateway's own work) costs plus what a raw round trip
// costs, so with closed-loop throughputs M and F its throughput is at most
// 1/(1/M + 1/F), a ratio to F of at most M/(M+F), even if the gateway's
// broker client cost no more than the raw loop. (The memory broker's hop,
// counted in M, makes the bound a little low.) Median of the rounds.
func (m *measured) ceiling(targets []target, mem, j int) (Comparison, string) {
	ratio, n, texts := roundRatios(m.closedRounds[mem], m.closedRounds[j], func(a, b *loadtest.Result) float64 {
		return a.Throughput / (a.Throughput + b.Throughput)
	})
	mt, ft := m.closed[mem].Throughput, m.closed[j].Throughput
	c := compare(fmt.Sprintf("ceiling of a gateway's throughput on this machine: %s's CPU per request plus %s's (ratio: median of %d rounds)",
		targets[mem].name, targets[j].name, n), mt*ft/(mt+ft), m.closed[j].Name+": throughput", ft, "req/s")
	c.Ratio = ratio
	note := fmt.Sprintf("Ceiling against %s: the load generator, gateway, service and broker share this machine's CPUs, so a request through a gateway costs at least "+
		"one through %s (HTTP in and out, the gateway) plus one raw round trip; with closed-loop throughputs M and F a gateway reaches at most M/(M+F) of F "+
		"even if its broker client cost nothing beyond the raw loop's. Round by round: %s.", targets[j].name, targets[mem].name, texts)
	return c, note
}

// roundRatios applies ratio to the rounds ar and br pairwise and returns
// the median, how many rounds there were and the ratios as text.
func roundRatios(ar, br []*loadtest.Result, ratio func(a, b *loadtest.Result) float64) (float64, int, string) {
	var ratios []float64
	var texts []string
	for r := range min(len(ar), len(br)) {
		ratios = append(ratios, ratio(ar[r], br[r]))
		texts = append(texts, fmt.Sprintf("%.2f", ratios[r]))
	}
	return median(ratios), len(ratios), strings.Join(texts, ", ")
}

// vsRounds compares figure of a with that of floor b, the ratio being the
// median of the ratios of their rounds ar and br, which it also returns
// as text.
func vsRounds(a, b *loadtest.Result, ar, br []*loadtest.Result, what, unit string, figure func(*loadtest.Result) float64) (Comparison, string) {
	ratio, n, texts := roundRatios(ar, br, func(a, b *loadtest.Result) float64 { return figure(a) / figure(b) })
	c := compare(fmt.Sprintf("%s: %s (ratio: median of %d interleaved rounds)", a.Name, what, n),
		figure(a), b.Name+": "+what, figure(b), unit)
	c.Ratio = ratio
	return c, texts
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

// p50Aims are the backends' latency aims at concurrency 1 (their issues),
// by target.backend: every gateway target over a backend carries its aim.
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
// setup, which may return a cleanup; over rabbitmq a second time with
// classic queues and transient messages, see startClassic) and the raw
// loops on the same broker.
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
	t.srv, t.backend = mem, "memory"
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
		t.srv, t.backend = n, kind
		gateways := []string{t.name}
		targets = append(targets, t)
		if kind == "rabbitmq" {
			c, stop, err := startClassic(classicConfig(cfg))
			if err != nil {
				return nil, err
			}
			defer stop(rep)
			gateways = append(gateways, c.name)
			targets = append(targets, c)
		}
		raws, cleanup, err := rawTargets(rep, kind, cfg, gateways)
		if err != nil {
			return nil, err
		}
		defer cleanup(rep)
		targets = append(targets, raws...)
	}
	err = compareTargets(ctx, o, rep, throughputPhases(o), targets)
	return rep, err
}
