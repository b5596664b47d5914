package scenario

import (
	"math"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/loadtest"
)

// natsAims: the throughput row against 1/(1/M + 1/F), the p50 row as the
// difference to gateway/memory's against natsP50Aim.
func TestNATSAims(t *testing.T) {
	res := func(name string, tput, p50 float64) *loadtest.Result {
		return &loadtest.Result{Name: name, Throughput: tput, Latency: loadtest.Summary{P50: p50}}
	}
	rep := &Report{Results: []*loadtest.Result{
		res("gateway/memory, 64 workers", 10000, 0), res("gateway/nats, 64 workers", 3600, 0),
		res(rawNATSName+", 64 workers", 40000, 0),
		res("gateway/memory, 1 worker", 0, 0.10), res("gateway/nats, 1 worker", 0, 0.40),
	}}
	cs := natsAims(rep)
	if len(cs) != 2 {
		t.Fatalf("%d comparisons, want 2: %+v", len(cs), cs)
	}
	// Ceiling 1/(1/10000 + 1/40000) = 8000; 3600/8000 = 0.45.
	if c := cs[0]; c.FloorValue != 8000 || math.Abs(c.Ratio-0.45) > 1e-9 || c.Aim != "≥ 0.80" || *c.Met {
		t.Errorf("throughput row %+v: want 3600 of a ceiling of 8000, 0.45, not met", c)
	}
	// 0.40 - 0.10 = 0.30 ms, twice the aim.
	if c := cs[1]; math.Abs(c.Value-0.30) > 1e-9 || math.Abs(c.Ratio-2) > 1e-9 || c.Aim != "≤ 1.00" || *c.Met ||
		!strings.Contains(c.Floor, "0.15 ms") {
		t.Errorf("p50 row %+v: want 0.30 ms against an aim of 0.15 ms, not met", c)
	}
	// A report without the gateway/nats rows (skipped, failed): no aims.
	if cs := natsAims(&Report{}); len(cs) != 0 {
		t.Errorf("empty report: %+v", cs)
	}
}
