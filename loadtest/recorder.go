package loadtest

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
)

// Histograms hold microseconds from 1 µs to 1 h.
const (
	histMax     = int64(time.Hour / time.Microsecond)
	maxErrTexts = 10
)

func newHist(digits int) *hdrhistogram.Histogram { return hdrhistogram.New(1, histMax, digits) }

func micros(d time.Duration) int64 {
	us := int64(d / time.Microsecond)
	return min(max(us, 1), histMax)
}

// recorder collects the outcome of every operation. One mutex: recording is
// a few array increments, far cheaper than the operation it records.
type recorder struct {
	measureStart time.Time
	end          time.Time // of the measured window
	interval     time.Duration

	mu       sync.Mutex
	latency  *hdrhistogram.Histogram // from the intended send time
	service  *hdrhistogram.Histogram // from the actual send time
	recent   *hdrhistogram.Histogram // since the last progress line
	buckets  []*bucket
	done     int64 // every operation, warm-up included (the progress rate)
	warmDone int64 // warm-up operations (progress during the warm-up)
	warmErrs int64
	measured int64
	inWindow int64 // operations (warm-up ones too) done in the measured window
	errs     int64
	status   map[int]int64
	errTexts map[string]int64
	first    time.Time
	last     time.Time
}

type bucket struct {
	hist   *hdrhistogram.Histogram
	errors int64
}

func newRecorder(measureStart, end time.Time, interval time.Duration) *recorder {
	return &recorder{
		measureStart: measureStart, end: end, interval: interval,
		latency: newHist(3), service: newHist(3), recent: newHist(2),
		status: make(map[int]int64), errTexts: make(map[string]int64),
	}
}

func (r *recorder) record(intended, sent, done time.Time, status int, err error, measured bool) {
	lat := micros(done.Sub(intended))
	r.mu.Lock()
	defer r.mu.Unlock()
	r.done++
	_ = r.recent.RecordValue(lat)
	if !done.Before(r.measureStart) && !done.After(r.end) {
		r.inWindow++
	}
	if !measured {
		r.warmDone++
		if err != nil {
			r.warmErrs++
		}
		return
	}
	r.measured++
	_ = r.latency.RecordValue(lat)
	_ = r.service.RecordValue(micros(done.Sub(sent)))
	if r.first.IsZero() || intended.Before(r.first) {
		r.first = intended
	}
	if done.After(r.last) {
		r.last = done
	}
	if status != 0 {
		r.status[status]++
	}
	// Bucketed by intended send time: the series covers the measured
	// window exactly, and a stall shows where it began.
	i := max(int(intended.Sub(r.measureStart)/r.interval), 0)
	for len(r.buckets) <= i {
		r.buckets = append(r.buckets, &bucket{hist: newHist(2)})
	}
	b := r.buckets[i]
	_ = b.hist.RecordValue(lat)
	if err != nil {
		r.errs++
		b.errors++
		text := errText(err)
		if _, ok := r.errTexts[text]; ok || len(r.errTexts) < maxErrTexts {
			r.errTexts[text]++
		} else {
			r.errTexts["other"]++
		}
	}
}

func errText(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	case errors.Is(err, context.Canceled):
		return "canceled"
	}
	s := err.Error()
	if len(s) > 120 {
		s = s[:120]
	}
	return s
}

// progressSnapshot is what one progress line shows.
type progressSnapshot struct {
	all                int64 // every operation done, warm-up included (for the rate)
	warmup, warmupErrs int64
	// measured and errors count what the result will count, so the last
	// line agrees with the table.
	measured, errors int64
	p99              time.Duration // of what completed since the last snapshot
}

// snapshot returns progress figures and resets the recent histogram.
func (r *recorder) snapshot() progressSnapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := progressSnapshot{
		all: r.done, warmup: r.warmDone, warmupErrs: r.warmErrs, measured: r.measured, errors: r.errs,
		p99: time.Duration(r.recent.ValueAtQuantile(99)) * time.Microsecond,
	}
	r.recent.Reset()
	return s
}

func (r *recorder) result(cfg Config) *Result {
	r.mu.Lock()
	defer r.mu.Unlock()
	res := &Result{
		Name: cfg.Name, Mode: "closed", Workers: cfg.Workers,
		WarmupS: cfg.Warmup.Seconds(), DurationS: cfg.Duration.Seconds(),
		Requests: r.measured, Errors: r.errs,
		Status:      make(map[string]int64, len(r.status)),
		ErrorCounts: make(map[string]int64, len(r.errTexts)),
		Latency:     summarize(r.latency),
		ServiceTime: summarize(r.service),
		Percentiles: spectrum(r.latency),
		hist:        r.latency,
		svc:         r.service,
	}
	if cfg.Rate > 0 {
		res.Mode, res.Rate = "open", cfg.Rate
	}
	for s, n := range r.status {
		res.Status[strconv.Itoa(s)] = n
	}
	for t, n := range r.errTexts {
		res.ErrorCounts[t] = n
	}
	if r.measured > 0 {
		// Operations completed in the measured window (whenever they
		// started), over its length; the window ends early when a request
		// count ended the run first.
		res.ElapsedS = r.last.Sub(r.first).Seconds()
		window := r.end
		if r.last.Before(window) {
			window = r.last
		}
		if w := window.Sub(r.measureStart).Seconds(); w > 0 {
			res.Throughput = float64(r.inWindow) / w
		}
	}
	for i, b := range r.buckets {
		n := b.hist.TotalCount()
		p := Point{
			T: (time.Duration(i) * r.interval).Seconds(), Count: n, Errors: b.errors,
		}
		if n > 0 {
			p.P50 = ms(b.hist.ValueAtQuantile(50))
			p.P99 = ms(b.hist.ValueAtQuantile(99))
			p.Max = ms(b.hist.Max())
		}
		res.Series = append(res.Series, p)
	}
	sort.Slice(res.Percentiles, func(i, j int) bool { return res.Percentiles[i].Quantile < res.Percentiles[j].Quantile })
	return res
}
