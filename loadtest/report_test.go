package loadtest_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/loadtest"
)

func sample(t *testing.T, name string, d time.Duration) *loadtest.Result {
	t.Helper()
	var res *loadtest.Result
	synctest.Test(t, func(t *testing.T) {
		var err error
		res, err = loadtest.Run(t.Context(), loadtest.Config{Name: name, Rate: 100, Duration: 3 * time.Second},
			fakeTarget(func(w http.ResponseWriter, r *http.Request) { time.Sleep(d) }).Op())
		if err != nil {
			t.Fatal(err)
		}
	})
	return res
}

func TestReports(t *testing.T) {
	a, b := sample(t, "a", 2*time.Millisecond), sample(t, "b", 4*time.Millisecond)
	md := loadtest.MarkdownTable(a, b)
	for _, want := range []string{"| a | open | 100 req/s | 300 |", "| 2.00 | 2.00 | 2.00 |", "200×300"} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
	var buf bytes.Buffer
	if err := loadtest.WriteJSON(&buf, a); err != nil {
		t.Fatal(err)
	}
	var back []loadtest.Result
	if err := json.Unmarshal(buf.Bytes(), &back); err != nil || len(back) != 1 || back[0].Latency.P99 != 2 || len(back[0].Series) != 60 {
		t.Fatalf("JSON round trip: %v %+v", err, back)
	}
	m := loadtest.Merge("a+b", a, b)
	if m.Requests != 600 || m.Latency.P50 != 2 || !near(m.Latency.Max, 4, 0.01) || !near(m.ServiceTime.Max, 4, 0.01) ||
		m.Throughput != (a.Throughput+b.Throughput)/2 {
		t.Errorf("merged %+v", m)
	}
	dir := t.TempDir()
	for _, f := range []string{"t.svg", "t.png"} {
		if err := loadtest.PlotLatencyOverTime(filepath.Join(dir, "time-"+f), "over time", a, b); err != nil {
			t.Fatal(err)
		}
		if err := loadtest.PlotPercentiles(filepath.Join(dir, "pct-"+f), "percentiles", a, b); err != nil {
			t.Fatal(err)
		}
	}
	svg, err := os.ReadFile(filepath.Join(dir, "pct-t.svg"))
	if err != nil || !bytes.Contains(svg, []byte("<svg")) || !bytes.Contains(svg, []byte("99%")) {
		t.Errorf("percentile SVG: %v, %.200s", err, svg)
	}
	if err := loadtest.PlotPercentiles(filepath.Join(dir, "none.svg"), "empty", &loadtest.Result{}); err == nil {
		t.Error("plotting nothing: want an error")
	}
}

func TestReadRSS(t *testing.T) {
	rss, err := loadtest.ReadRSS()
	if err != nil {
		t.Skipf("no procfs here: %v", err)
	}
	if rss < 1<<20 || rss > 64<<30 {
		t.Errorf("RSS %d bytes: implausible", rss)
	}
}
