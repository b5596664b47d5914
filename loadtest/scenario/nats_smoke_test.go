package scenario_test

import (
	"net"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/loadtest/scenario"
)

// A smoke run of the nats scenario at a twentieth of its short length: every
// request answered 200 (raw loop included), the ceiling row and issue 22's
// two aims filled in.
func TestNATSSmoke(t *testing.T) {
	if testing.Short() {
		t.Skip("this test needs NATS; -short (make check) runs only the tests that need no server, make test runs it")
	}
	if c, err := net.DialTimeout("tcp", scenario.NATSAddr, 3*time.Second); err != nil {
		testenv.Unavailable(t, "this test needs nats-server at %s (nats-server -a 127.0.0.1 -p 4222 -js): %v", scenario.NATSAddr, err)
	} else {
		_ = c.Close()
	}
	rep, err := scenario.Run(t.Context(), "nats", scenario.Options{Short: true, Scale: 0.05})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Skipped != "" {
		t.Fatalf("skipped: %s", rep.Skipped)
	}
	for _, name := range []string{"gateway/nats, 64 workers", "raw nats.go request/reply, 1 worker", "gateway/nats, 1000 req/s"} {
		if rep.Result(name) == nil {
			t.Errorf("no result %q", name)
		}
	}
	for _, r := range rep.Results {
		if r.Requests == 0 || r.Errors != 0 || r.Status["200"] != r.Requests {
			t.Errorf("%s: %d requests, %d errors, statuses %v", r.Name, r.Requests, r.Errors, r.Status)
		}
	}
	var ceiling, aims int
	for _, c := range rep.Comparisons {
		if strings.HasPrefix(c.What, "ceiling of a gateway's throughput") && strings.Contains(c.What, "raw nats.go") {
			ceiling++
		}
		if strings.HasPrefix(c.What, "gateway/nats") && c.Met != nil {
			if c.FloorValue <= 0 {
				t.Errorf("%s: floor %v", c.What, c.FloorValue)
			}
			aims++
		}
	}
	if ceiling != 1 || aims != 2 {
		t.Errorf("%d ceiling rows and %d gateway/nats aims, want 1 and 2: %+v", ceiling, aims, rep.Comparisons)
	}
}
