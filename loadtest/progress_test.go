package loadtest_test

import (
	"bytes"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/loadtest"
)

var progressLine = regexp.MustCompile(`^\[p\] (\S+) +\S+/\S+  done (\d+)  errors (\d+)  `)

// The progress line counts what the result counts: the warm-up has its own
// count while it lasts, "done" never exceeds the measured requests, and the
// last line, printed when the run ends, equals the table's figure.
func TestProgressCountsMeasuredOnly(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		var out bytes.Buffer
		res, err := loadtest.Run(t.Context(), loadtest.Config{
			Name: "p", Rate: 100, Warmup: 500 * time.Millisecond, Duration: time.Second,
			Progress: &out, ProgressEvery: 100 * time.Millisecond,
		}, fakeTarget(delay(10*time.Millisecond)).Op())
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests != 100 {
			t.Fatalf("requests %d; want 100", res.Requests)
		}
		lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
		phases := map[string]int{}
		var last []string
		for _, l := range lines {
			m := progressLine.FindStringSubmatch(l)
			if m == nil {
				t.Fatalf("unexpected progress line %q", l)
			}
			phases[m[1]]++
			done, _ := strconv.ParseInt(m[2], 10, 64)
			if m[1] != "warm-up" && done > res.Requests {
				t.Errorf("%q: done %d > the %d measured requests", l, done, res.Requests)
			}
			last = m
		}
		if phases["warm-up"] == 0 || phases["measure"] == 0 {
			t.Errorf("phases %v; want warm-up and measure lines:\n%s", phases, out.String())
		}
		if want := fmt.Sprint(res.Requests); last[1] != "end" || last[2] != want || last[3] != "0" {
			t.Errorf("last line %q; want end with done %s errors 0", last[0], want)
		}
	})
}

// The latency-over-time series has dozens of points for the short
// scenarios' 5 s as for a minute.
func TestSeriesHasDozensOfPoints(t *testing.T) {
	for _, tc := range []struct {
		d      time.Duration
		points int
	}{{time.Second, 50}, {5 * time.Second, 50}, {30 * time.Second, 60}, {90 * time.Second, 90}} {
		t.Run(tc.d.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				res, err := loadtest.Run(t.Context(), loadtest.Config{Rate: 100, Duration: tc.d},
					fakeTarget(delay(time.Millisecond)).Op())
				if err != nil {
					t.Fatal(err)
				}
				if len(res.Series) != tc.points {
					t.Errorf("%d points; want %d", len(res.Series), tc.points)
				}
			})
		})
	}
}
