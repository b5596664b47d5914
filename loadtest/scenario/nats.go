package scenario

import (
	"context"
	"fmt"
	"net"
	"time"

	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/loadtest"
)

// NATSAddr is where the nats scenario expects a NATS server (the node's
// default broker.nats.url points there too).
const NATSAddr = "127.0.0.1:4222"

// The aims of issue 22 for the gateway over NATS in core mode.
const (
	// natsCeilingAim: gateway/nats's throughput with 64 workers, as a
	// share of the ceiling this machine allows beside the raw floor.
	natsCeilingAim = 0.80
	// natsP50Aim: how far gateway/nats's 1-worker p50 may be above
	// gateway/memory's, in ms.
	natsP50Aim = 0.15
)

// NATS measures the gateway over NATS in core mode (a server on NATSAddr)
// against direct HTTP, the memory broker and nats.go's own request/reply
// on the same server, and checks issue 22's aims (see natsAims).
func NATS(ctx context.Context, o Options) (*Report, error) {
	if err := brokerSupported("nats"); err != nil {
		return skipped("nats", err), nil
	}
	c, err := net.DialTimeout("tcp", NATSAddr, 2*time.Second)
	if err != nil {
		return &Report{Skipped: fmt.Sprintf("no NATS server on %s (%v); .ci/run starts one (nats-server -js)", NATSAddr, err)}, nil
	}
	_ = c.Close()
	rep, err := brokerScenario(ctx, o, "nats", natsNode)
	if err != nil {
		return rep, err
	}
	rep.Comparisons = append(rep.Comparisons, natsAims(rep)...)
	return rep, nil
}

// natsNode gives the gateway/nats node an id, and so a reply subject, of
// its own: the inbox refuses a subject another live process answers on
// (two runs at once, a test beside `make bench`).
func natsNode(cfg *node.Config) (func(), error) {
	cfg.Node = "loadtest-nats-" + randomSuffix()
	return nil, nil
}

// natsAims are issue 22's two aims, from the closed-loop figures merged
// over the interleaved rounds (a target's throughput is the mean of its
// rounds', its p50 that of all its rounds' requests; the rounds' own
// figures stay inside compareTargets):
//
//   - throughput with 64 workers at least natsCeilingAim of the ceiling
//     1/(1/M + 1/F), M gateway/memory's throughput and F the raw floor's:
//     what a gateway whose NATS client cost no more than nats.go's
//     request/reply could reach on this machine (see measured.ceiling);
//   - p50 with 1 worker at most natsP50Aim ms above gateway/memory's, the
//     same gateway with a broker that costs no network hop.
func natsAims(rep *Report) []Comparison {
	workers := fmt.Sprintf("%d workers", Connections)
	result := func(target, load string) *loadtest.Result { return rep.Result(target + ", " + load) }
	var out []Comparison
	g, m, f := result("gateway/nats", workers), result("gateway/memory", workers), result(rawNATSName, workers)
	if g != nil && m != nil && f != nil && m.Throughput+f.Throughput > 0 {
		ceiling := m.Throughput * f.Throughput / (m.Throughput + f.Throughput)
		out = append(out, compare(fmt.Sprintf("gateway/nats, %s: throughput against the ceiling (means of the rounds)", workers),
			g.Throughput, "ceiling: 1/(1/M + 1/F), M gateway/memory's, F "+rawNATSName+"'s", ceiling, "req/s").atLeast(natsCeilingAim))
	}
	if g, m := result("gateway/nats", "1 worker"), result("gateway/memory", "1 worker"); g != nil && m != nil {
		out = append(out, compare("gateway/nats, 1 worker: p50 minus gateway/memory's (p50s of all the rounds' requests)",
			g.Latency.P50-m.Latency.P50, fmt.Sprintf("aim: %.2f ms", natsP50Aim), natsP50Aim, "ms").atMost(1))
	}
	return out
}
