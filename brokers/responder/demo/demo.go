// Package demo is the demo service that ships with syncgate, built on the
// responder SDK: echo answers with the request's body and content type;
// sleep does the same after ?ms=N milliseconds, so timeouts and 202 can be
// tried by hand.
package demo

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/responder"
)

// Destinations the demo service consumes.
const (
	EchoDestination  = "demo.echo"
	SleepDestination = "demo.sleep"
)

// MaxSleep bounds ?ms= so one request cannot hold a worker for long.
const MaxSleep = 5 * time.Minute

// Echo replies with the request's body and content type.
func Echo(_ context.Context, req responder.Request) (responder.Reply, error) {
	return responder.Reply{ContentType: req.ContentType, Body: req.Body}, nil
}

// Sleep waits ?ms=N milliseconds (0 to MaxSleep), then replies like Echo.
// With ?steps=K (1 to MaxSteps) it sends a progress message after each
// K-th of the sleep but the last, {"step":i,"of":K}, before its reply. It
// returns early, without a reply, when its deadline passes first.
func Sleep(ctx context.Context, req responder.Request) (responder.Reply, error) {
	d, steps, err := sleepParams(req.Query)
	if err != nil {
		return responder.Reply{}, &responder.StatusError{Status: 400, Err: err}
	}
	t := time.NewTimer(d / time.Duration(steps))
	defer t.Stop()
	for i := 1; ; i++ {
		select {
		case <-t.C:
		case <-ctx.Done():
			return responder.Reply{}, ctx.Err()
		}
		if i == steps {
			return Echo(ctx, req)
		}
		// Best effort, as progress is: a failed one does not fail the request.
		_ = responder.Progress(ctx, "application/json", fmt.Appendf(nil, `{"step":%d,"of":%d}`, i, steps))
		t.Reset(d / time.Duration(steps))
	}
}

// MaxSteps bounds ?steps=.
const MaxSteps = 100

func sleepParams(rawQuery string) (time.Duration, int, error) {
	d, err := sleepDuration(rawQuery)
	if err != nil {
		return 0, 0, err
	}
	q, _ := url.ParseQuery(rawQuery) // parsed by sleepDuration
	steps := 1
	if s := q.Get("steps"); s != "" {
		steps, err = strconv.Atoi(s)
		if err != nil || steps < 1 || steps > MaxSteps {
			return 0, 0, fmt.Errorf("steps must be an integer from 1 to %d", MaxSteps)
		}
	}
	return d, steps, nil
}

func sleepDuration(rawQuery string) (time.Duration, error) {
	q, err := url.ParseQuery(rawQuery)
	if err != nil {
		return 0, err
	}
	s := q.Get("ms")
	if s == "" {
		return 0, nil
	}
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil || ms < 0 || time.Duration(ms)*time.Millisecond > MaxSleep {
		return 0, errors.New("ms must be an integer from 0 to 300000")
	}
	return time.Duration(ms) * time.Millisecond, nil
}

// Serve runs the demo service's two handlers on s until ctx ends. ready is
// called once both subscriptions are positioned. opts go to both Subscribe
// calls (e.g. brokers.WithConcurrency).
func Serve(ctx context.Context, s *responder.Service, ready func(), opts ...brokers.SubscribeOption) error {
	var pending atomic.Int32
	pending.Store(2)
	done := func() {
		if pending.Add(-1) == 0 && ready != nil {
			ready()
		}
	}
	g, ctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		return s.Serve(ctx, EchoDestination, Echo, append(opts, brokers.WithReady(done))...)
	})
	g.Go(func() error {
		return s.Serve(ctx, SleepDestination, Sleep, append(opts, brokers.WithReady(done))...)
	})
	return g.Wait()
}

// EchoHTTP serves Echo over plain HTTP, without broker or gateway: the floor
// that benchmarks and load tests compare the gateway against.
func EchoHTTP() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		rep, _ := Echo(r.Context(), responder.Request{ContentType: r.Header.Get("Content-Type"), Body: body})
		w.Header().Set("Content-Type", rep.ContentType)
		_, _ = w.Write(rep.Body)
	})
}
