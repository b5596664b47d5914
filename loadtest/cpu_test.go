package loadtest_test

import (
	"context"
	"math"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/loadtest"
)

// burnEnv makes this test binary a child that spins on the CPU for the
// duration it holds, then exits (bounded: a stray child ends by itself).
const burnEnv = "LOADTEST_TEST_BURN"

func init() {
	if d, err := time.ParseDuration(os.Getenv(burnEnv)); err == nil {
		end := time.Now().Add(d)
		for x := 0; time.Now().Before(end); x++ {
			_ = math.Sqrt(float64(x))
		}
		os.Exit(0)
	}
}

// A process that spins through the measured part shows its CPU time, per
// completed request; the warm-up's is left out; the load generator is
// always listed first.
func TestRunAccountsCPUPerProcess(t *testing.T) {
	burner := exec.Command(os.Args[0], "-test.run=^$")
	burner.Env = append(os.Environ(), burnEnv+"=20s")
	if err := burner.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = burner.Process.Kill(); _ = burner.Wait() })

	res, err := loadtest.Run(context.Background(), loadtest.Config{
		Workers: 1, Warmup: 200 * time.Millisecond, Duration: 600 * time.Millisecond,
		Processes: []loadtest.Process{{Name: "burner", PID: burner.Process.Pid}},
	}, func(ctx context.Context) (int, error) {
		time.Sleep(time.Millisecond)
		return 200, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.CPU) != 2 || res.CPU[0].Name != loadtest.LoadGenerator || res.CPU[1].Name != "burner" {
		t.Fatalf("CPU %+v, want the load generator then the burner", res.CPU)
	}
	b := res.CPU[1]
	// It spins on one core for the 0.6 s measured: at most that (plus a
	// tick), and on a busy 2-core machine still a good share of it.
	if b.Err != "" || b.CPUSeconds < 0.1 || b.CPUSeconds > 0.6+0.2 {
		t.Errorf("burner CPU %.3f s (%s), want 0.1–0.8 s of the 0.6 s measured", b.CPUSeconds, b.Err)
	}
	if want := b.CPUSeconds / float64(res.Requests) * 1e6; res.Requests == 0 || math.Abs(b.PerRequestUS-want) > 1e-6 {
		t.Errorf("%d requests, %.1f µs per request, want %.1f", res.Requests, b.PerRequestUS, want)
	}
	if table := loadtest.MarkdownTable(res); !strings.Contains(table, "CPU µs per request") || !strings.Contains(table, "burner ") {
		t.Errorf("table without the CPU column:\n%s", table)
	}
}

// No completed request is no figure per request, not a division by zero;
// a process that is gone is named with its error.
func TestRunCPUWithoutRequests(t *testing.T) {
	gone := exec.Command(os.Args[0], "-test.run=^$")
	gone.Env = append(os.Environ(), burnEnv+"=1ms")
	if err := gone.Run(); err != nil {
		t.Fatal(err)
	}
	res, err := loadtest.Run(context.Background(), loadtest.Config{
		Workers: 1, Duration: 100 * time.Millisecond, Requests: 1, Timeout: 200 * time.Millisecond,
		Processes: []loadtest.Process{{Name: "gone", PID: gone.Process.Pid}},
	}, func(ctx context.Context) (int, error) {
		<-ctx.Done() // never completes within the run: times out
		return 0, ctx.Err()
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range res.CPU {
		if math.IsNaN(c.PerRequestUS) || math.IsInf(c.PerRequestUS, 0) {
			t.Errorf("%s: %v µs per request", c.Name, c.PerRequestUS)
		}
	}
	if len(res.CPU) != 2 || res.CPU[1].Err == "" {
		t.Errorf("CPU %+v: the exited process should carry an error", res.CPU)
	}
}

func TestParseProcess(t *testing.T) {
	if p, err := loadtest.ParseProcess("gateway=1234"); err != nil || p != (loadtest.Process{Name: "gateway", PID: 1234}) {
		t.Errorf("ParseProcess = %+v, %v", p, err)
	}
	for _, bad := range []string{"", "gateway", "=12", "gateway=x", "gateway=0", "gateway=-1"} {
		if _, err := loadtest.ParseProcess(bad); err == nil {
			t.Errorf("ParseProcess(%q) accepted", bad)
		}
	}
}
