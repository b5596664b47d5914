package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"time"
)

// Op is one unit of load: a request, or a request and the polls that follow
// it. It returns the final HTTP status (0 when there was none) and an error
// when the operation failed before a status was known.
type Op func(ctx context.Context) (status int, err error)

// Config describes one run.
type Config struct {
	// Name labels the result (table rows, plot legends).
	Name string
	// Rate, in operations per second, selects open loop when > 0.
	Rate float64
	// Workers is the number of closed-loop workers (default 64), or in open
	// loop the cap on operations in flight (default 10000): past it the
	// dispatcher waits, and the wait counts in the latency of what it sends.
	Workers int
	// Duration bounds the measured part of the run (default 10s).
	Duration time.Duration
	// Requests, when > 0, also bounds the measured operations.
	Requests int64
	// Warmup precedes the measured part; what starts in it is not recorded.
	Warmup time.Duration
	// Timeout bounds one operation (default 30s).
	Timeout time.Duration
	// Interval is the width of one bucket of the latency-over-time series.
	// The default gives about fifty points whatever the duration: the
	// smallest of 10ms, 20ms, 50ms, 100ms, 200ms, 500ms and 1s that makes
	// at most 60 buckets (1s past a minute).
	Interval time.Duration
	// Progress, when set, receives a line every ProgressEvery (default 1s).
	Progress      io.Writer
	ProgressEvery time.Duration
	// Processes, when set, are sampled (with this process, the load
	// generator) at the start and the end of the measured part: the
	// Result's CPU gives each one's CPU time per completed request.
	Processes []Process
}

// ErrConfig is returned for a Config that cannot be run.
var ErrConfig = errors.New("loadtest: invalid config")

func (c *Config) setDefaults() {
	if c.Workers == 0 {
		c.Workers = 64
		if c.Rate > 0 {
			c.Workers = 10000
		}
	}
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 30 * time.Second
	}
	if c.Interval == 0 {
		c.Interval = defaultInterval(c.Duration)
	}
	if c.ProgressEvery == 0 {
		c.ProgressEvery = time.Second
	}
	if c.Name == "" {
		c.Name = "run"
	}
}

// defaultInterval returns the series bucket for a measured duration:
// dozens of points for a 5 s run as for a minute, and buckets wide enough
// that each holds more than a handful of operations.
func defaultInterval(d time.Duration) time.Duration {
	for _, iv := range []time.Duration{
		10 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond,
		100 * time.Millisecond, 200 * time.Millisecond, 500 * time.Millisecond,
	} {
		if d <= 60*iv {
			return iv
		}
	}
	return time.Second
}

// Validate checks a Config after defaults; its errors name the field.
func (c *Config) Validate() error {
	var errs []error
	bad := func(field, msg string) { errs = append(errs, fmt.Errorf("%w: %s: %s", ErrConfig, field, msg)) }
	if c.Rate < 0 {
		bad("Rate", "must not be negative")
	}
	if c.Workers < 0 {
		bad("Workers", "must not be negative")
	}
	if c.Duration < 0 || c.Duration > 24*time.Hour {
		bad("Duration", "must be between 0 and 24h")
	}
	if c.Requests < 0 {
		bad("Requests", "must not be negative")
	}
	if c.Warmup < 0 {
		bad("Warmup", "must not be negative")
	}
	if c.Timeout < 0 {
		bad("Timeout", "must not be negative")
	}
	if c.Interval < 0 || c.ProgressEvery < 0 {
		bad("Interval", "must not be negative")
	}
	return errors.Join(errs...)
}

// Run drives op as cfg says and returns what it measured. It returns when
// the measured part is over and every operation it started has finished
// (each is bounded by cfg.Timeout), or early with ctx's error when ctx ends.
func Run(ctx context.Context, cfg Config, op Op) (*Result, error) {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	start := time.Now()
	r := &run{
		cfg:          cfg,
		op:           op,
		start:        start,
		measureStart: start.Add(cfg.Warmup),
		end:          start.Add(cfg.Warmup + cfg.Duration),
		rec:          newRecorder(start.Add(cfg.Warmup), start.Add(cfg.Warmup+cfg.Duration), cfg.Interval),
	}
	runCtx, cancel := context.WithCancel(ctx)
	defer cancel()
	// The measured part starts after the warm-up: the CPU is sampled then,
	// from a timer, whatever the loop is doing.
	cpu := newCPUSampler(cfg.Processes)
	var began chan struct{}
	var sampleTimer *time.Timer
	if cpu != nil {
		began = make(chan struct{})
		sampleTimer = time.AfterFunc(cfg.Warmup, func() { cpu.begin(); close(began) })
		defer sampleTimer.Stop()
	}
	progressDone := make(chan struct{})
	if cfg.Progress != nil {
		go func() {
			defer close(progressDone)
			r.progress(runCtx)
		}()
	} else {
		close(progressDone)
	}
	if cfg.Rate > 0 {
		r.openLoop(runCtx)
	} else {
		r.closedLoop(runCtx)
	}
	cancel()
	<-progressDone
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := r.rec.result(cfg)
	if cpu != nil {
		if sampleTimer.Stop() {
			cpu.begin() // ended within the warm-up: nothing measured
		} else {
			<-began
		}
		// Every operation started has finished: the CPU they cost is in.
		res.CPU = cpu.end(res.Requests)
	}
	return res, nil
}

type run struct {
	cfg          Config
	op           Op
	start        time.Time
	measureStart time.Time
	end          time.Time
	rec          *recorder
	issued       atomic.Int64 // measured operations started
}

// take reserves one measured operation; false once Requests is reached.
func (r *run) take() bool {
	if r.cfg.Requests <= 0 {
		r.issued.Add(1)
		return true
	}
	if r.issued.Add(1) > r.cfg.Requests {
		r.issued.Add(-1)
		return false
	}
	return true
}

func (r *run) do(ctx context.Context, intended time.Time, measured bool) {
	opCtx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	sent := time.Now()
	status, err := r.op(opCtx)
	done := time.Now()
	cancel()
	if ctx.Err() != nil {
		return // the run was cancelled: not a result
	}
	r.rec.record(intended, sent, done, status, err, measured)
}

// openLoop dispatches operation i at start + i/rate. A dispatcher behind
// schedule sends what is due at once; latency still counts from the
// intended time, so falling behind shows in the figures.
func (r *run) openLoop(ctx context.Context) {
	period := time.Duration(float64(time.Second) / r.cfg.Rate)
	if period <= 0 {
		period = 1
	}
	sem := make(chan struct{}, r.cfg.Workers)
	var wg sync.WaitGroup
	defer wg.Wait()
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for i := int64(0); ; i++ {
		intended := r.start.Add(time.Duration(i) * period)
		if !intended.Before(r.end) {
			return
		}
		measured := !intended.Before(r.measureStart)
		if measured && !r.take() {
			return
		}
		if wait := time.Until(intended); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return
			}
		}
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return
		}
		wg.Go(func() {
			defer func() { <-sem }()
			r.do(ctx, intended, measured)
		})
	}
}

// closedLoop runs Workers loops, each sending its next operation when the
// previous one is answered.
func (r *run) closedLoop(ctx context.Context) {
	var wg sync.WaitGroup
	for range r.cfg.Workers {
		wg.Go(func() {
			for ctx.Err() == nil {
				now := time.Now()
				if !now.Before(r.end) {
					return
				}
				measured := !now.Before(r.measureStart)
				if measured && !r.take() {
					return
				}
				r.do(ctx, now, measured)
			}
		})
	}
	wg.Wait()
}

// progress prints a line every ProgressEvery and a last one when the run
// ends. "done" counts measured operations only, as the result does (the
// warm-up has its own count while it lasts); the rate counts everything.
func (r *run) progress(ctx context.Context) {
	t := time.NewTicker(r.cfg.ProgressEvery)
	defer t.Stop()
	var lastAll int64
	last := time.Now()
	line := func(now time.Time, final bool) {
		s := r.rec.snapshot()
		window := now.Sub(last)
		rate := 0.0
		if window > 0 {
			rate = float64(s.all-lastAll) / window.Seconds()
		}
		lastAll, last = s.all, now
		phase, done, errs := "measure", s.measured, s.errors
		switch {
		case final:
			phase = "end"
		case now.Before(r.measureStart):
			phase, done, errs = "warm-up", s.warmup, s.warmupErrs
		case now.After(r.end):
			phase = "drain" // waiting for the operations still in flight
		}
		fmt.Fprintf(r.cfg.Progress, "[%s] %s %5.1fs/%s  done %d  errors %d  %.0f/s  p99 %s (last %s)\n",
			r.cfg.Name, phase, now.Sub(r.start).Seconds(), r.cfg.Warmup+r.cfg.Duration,
			done, errs, rate, s.p99.Round(10*time.Microsecond), window.Round(time.Millisecond))
	}
	for {
		select {
		case <-ctx.Done():
			line(time.Now(), true)
			return
		case now := <-t.C:
			line(now, false)
		}
	}
}
