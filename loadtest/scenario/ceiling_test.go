package scenario

import (
	"math"
	"strings"
	"testing"

	"github.com/syncgate/syncgate/loadtest"
)

// TestCeiling: with the gateway's HTTP path as fast as the raw loop, a
// gateway over the broker reaches at most half of the raw loop; the figure
// is the median of the rounds, each round its own ratio.
func TestCeiling(t *testing.T) {
	res := func(tput ...float64) []*loadtest.Result {
		var out []*loadtest.Result
		for _, v := range tput {
			out = append(out, &loadtest.Result{Name: "r", Throughput: v})
		}
		return out
	}
	m := &measured{
		closedRounds: [][]*loadtest.Result{res(10000, 30000, 9000), res(10000, 10000, 1000)},
		closed:       res(10000, 10000),
	}
	targets := []target{{name: "gateway/memory"}, {name: "floor"}}
	c, note := m.ceiling(targets, 0, 1)
	// Rounds: 10000/(10000+10000) = 0.5, 30000/40000 = 0.75, 9000/10000 = 0.9.
	if math.Abs(c.Ratio-0.75) > 1e-9 {
		t.Fatalf("ratio %v, want the median of 0.50, 0.75, 0.90", c.Ratio)
	}
	if c.Value != 5000 || c.FloorValue != 10000 {
		t.Fatalf("value %v of floor %v, want 1/(1/10000+1/10000) = 5000 of 10000", c.Value, c.FloorValue)
	}
	if !strings.Contains(note, "0.50, 0.75, 0.90") {
		t.Fatalf("note %q lacks the rounds", note)
	}
}
