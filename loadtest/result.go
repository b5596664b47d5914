package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Result is what one run measured. Latencies are in milliseconds.
type Result struct {
	Name      string  `json:"name"`
	Mode      string  `json:"mode"` // "open" (constant rate) or "closed" (workers)
	Rate      float64 `json:"target_rate,omitempty"`
	Workers   int     `json:"workers"`
	WarmupS   float64 `json:"warmup_s"`
	DurationS float64 `json:"duration_s"`
	ElapsedS  float64 `json:"elapsed_s"`
	Requests  int64   `json:"requests"`
	Errors    int64   `json:"errors"`
	// Throughput is operations completed in the measured window per
	// second of it, warm-up operations included: with latencies near the
	// duration, give the run a warm-up at least as long as the latency.
	Throughput float64 `json:"throughput_rps"`
	// Status counts final HTTP statuses by code.
	Status map[string]int64 `json:"status"`
	// ErrorCounts counts errors by (shortened) message.
	ErrorCounts map[string]int64 `json:"error_counts,omitempty"`
	// Latency counts from the intended send time (open loop) or the send
	// time (closed loop, where the two are the same).
	Latency Summary `json:"latency_ms"`
	// ServiceTime counts from the actual send time. In open loop, the gap
	// between it and Latency is the queueing a closed-loop tool would hide.
	ServiceTime Summary `json:"service_time_ms"`
	// Percentiles is the latency spectrum (for the percentile plot).
	Percentiles []Percentile `json:"percentiles"`
	// Series is latency over time, one point per Config.Interval.
	Series []Point `json:"series"`
	// CPU is each sampled process's CPU time per completed request
	// (Config.Processes); empty when none were given.
	CPU []ProcessCPU `json:"cpu_per_process,omitempty"`

	hist, svc *hdrhistogram.Histogram // for Merge
}

// Summary is a latency distribution in milliseconds.
type Summary struct {
	Min  float64 `json:"min"`
	Mean float64 `json:"mean"`
	P50  float64 `json:"p50"`
	P90  float64 `json:"p90"`
	P99  float64 `json:"p99"`
	P999 float64 `json:"p99_9"`
	Max  float64 `json:"max"`
}

// Percentile is one point of the latency spectrum: Quantile in percent.
type Percentile struct {
	Quantile float64 `json:"q"`
	Ms       float64 `json:"ms"`
}

// Point is one interval of the latency-over-time series; T is its start in
// seconds after the warm-up.
type Point struct {
	T      float64 `json:"t_s"`
	Count  int64   `json:"count"`
	Errors int64   `json:"errors"`
	P50    float64 `json:"p50_ms"`
	P99    float64 `json:"p99_ms"`
	Max    float64 `json:"max_ms"`
}

func ms(us int64) float64 { return float64(us) / 1000 }

func summarize(h *hdrhistogram.Histogram) Summary {
	if h.TotalCount() == 0 {
		return Summary{}
	}
	return Summary{
		Min: ms(h.Min()), Mean: h.Mean() / 1000,
		P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
		P99: ms(h.ValueAtQuantile(99)), P999: ms(h.ValueAtQuantile(99.9)),
		Max: ms(h.Max()),
	}
}

// spectrum samples the distribution evenly on the "number of nines" scale
// (q = 100·(1 − 10^−k)), up to what the sample count resolves.
func spectrum(h *hdrhistogram.Histogram) []Percentile {
	n := h.TotalCount()
	if n == 0 {
		return nil
	}
	maxK := math.Log10(float64(n))
	var out []Percentile
	for k := 0.0; k <= maxK+1e-9; k += 0.05 {
		q := 100 * (1 - math.Pow(10, -k))
		out = append(out, Percentile{Quantile: q, Ms: ms(h.ValueAtQuantile(q))})
	}
	return append(out, Percentile{Quantile: 100, Ms: ms(h.Max())})
}

// Merge combines results of the same kind of run (e.g. interleaved rounds)
// into one: counts add up, throughput is the mean of the rounds' and the
// latency distribution is that of all their operations. The series is the
// first result's.
func Merge(name string, rs ...*Result) *Result {
	if len(rs) == 0 {
		return nil
	}
	out := *rs[0]
	out.Name = name
	out.Status = map[string]int64{}
	out.ErrorCounts = map[string]int64{}
	out.hist, out.svc = newHist(3), newHist(3)
	out.Requests, out.Errors, out.Throughput, out.ElapsedS, out.DurationS = 0, 0, 0, 0, 0
	for _, r := range rs {
		out.Requests += r.Requests
		out.Errors += r.Errors
		out.Throughput += r.Throughput / float64(len(rs))
		out.ElapsedS += r.ElapsedS
		out.DurationS += r.DurationS
		for k, v := range r.Status {
			out.Status[k] += v
		}
		for k, v := range r.ErrorCounts {
			out.ErrorCounts[k] += v
		}
		if r.hist != nil {
			out.hist.Merge(r.hist)
		}
		if r.svc != nil {
			out.svc.Merge(r.svc)
		}
	}
	out.CPU = mergeCPU(out.Requests, rs)
	out.Latency, out.ServiceTime = summarize(out.hist), summarize(out.svc)
	out.Percentiles = spectrum(out.hist)
	return &out
}

// WriteJSON writes results as an indented JSON array.
func WriteJSON(w io.Writer, rs ...*Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(rs)
}

// MarkdownTable renders one row per result.
func MarkdownTable(rs ...*Result) string {
	var b strings.Builder
	withCPU := slices.ContainsFunc(rs, func(r *Result) bool { return len(r.CPU) > 0 })
	cpuHead, cpuRule := "", ""
	if withCPU {
		cpuHead, cpuRule = " CPU µs per request |", "---|"
	}
	b.WriteString("| run | mode | load | requests | throughput (req/s) | p50 ms | p90 ms | p99 ms | p99.9 ms | max ms | errors | statuses |" + cpuHead + "\n")
	b.WriteString("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|" + cpuRule + "\n")
	for _, r := range rs {
		load := fmt.Sprintf("%d workers", r.Workers)
		switch {
		case r.Mode == "open":
			load = fmt.Sprintf("%s req/s", fmtNum(r.Rate))
		case r.Workers == 1:
			load = "1 worker"
		}
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %s | %s | %s | %s | %s | %s | %d | %s |",
			r.Name, r.Mode, load, r.Requests, fmtNum(r.Throughput),
			fmtMs(r.Latency.P50), fmtMs(r.Latency.P90), fmtMs(r.Latency.P99), fmtMs(r.Latency.P999), fmtMs(r.Latency.Max),
			r.Errors, StatusText(r.Status))
		if withCPU {
			fmt.Fprintf(&b, " %s |", CPUText(r.CPU))
		}
		b.WriteString("\n")
	}
	return b.String()
}

// StatusText renders status counts as "200×1234 202×5", ordered by code.
func StatusText(status map[string]int64) string {
	codes := make([]string, 0, len(status))
	for c := range status {
		codes = append(codes, c)
	}
	slices.Sort(codes)
	parts := make([]string, 0, len(codes))
	for _, c := range codes {
		parts = append(parts, c+"×"+strconv.FormatInt(status[c], 10))
	}
	if len(parts) == 0 {
		return "–"
	}
	return strings.Join(parts, " ")
}

func fmtNum(v float64) string {
	if v >= 100 || v == math.Trunc(v) {
		return strconv.FormatFloat(math.Round(v), 'f', 0, 64)
	}
	return strconv.FormatFloat(v, 'f', 1, 64)
}

func fmtMs(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	}
	return strconv.FormatFloat(v, 'f', 2, 64)
}
