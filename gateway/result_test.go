package gateway_test

import (
	"context"
	"errors"
	"testing"
	"testing/synctest"
	"time"

	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

type awaited struct {
	res     correlation.Result
	err     error
	elapsed time.Duration
}

// await runs Await in a goroutine and returns its result channel.
func (f *fixture) await(ctx context.Context, id string, d time.Duration) <-chan awaited {
	got := make(chan awaited, 1)
	go func() {
		start := time.Now()
		res, err := f.gw.Await(ctx, id, "", d)
		got <- awaited{res, err, time.Since(start)}
	}()
	return got
}

func TestAwaitWakesOnTheReply(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		r := <-f.do(t.Context(), route(gateway.ModeAsync), gateway.Preferences{})
		m := <-f.pub.msgs
		got := f.await(t.Context(), r.out.ID, 5*time.Second)
		time.Sleep(1500 * time.Millisecond)
		f.reply(t, m, "in")
		a := <-got
		if a.err != nil || a.res.State != correlation.StateDone || string(a.res.Reply.Body) != "in" || a.elapsed != 1500*time.Millisecond {
			t.Fatalf("Await = %+v, %v after %v", a.res, a.err, a.elapsed)
		}
	})
}

func TestAwaitTimesOutPendingAndCloses(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		r := <-f.do(t.Context(), route(gateway.ModeAsync), gateway.Preferences{})
		<-f.pub.msgs
		start := time.Now()
		res, err := f.gw.Await(t.Context(), r.out.ID, "", 3*time.Second)
		if err != nil || res.State != correlation.StatePending || time.Since(start) != 3*time.Second {
			t.Fatalf("Await = %+v, %v after %v", res, err, time.Since(start))
		}
		done := make(chan error, 1)
		go func() {
			_, err := f.gw.Await(t.Context(), r.out.ID, "", time.Hour)
			done <- err
		}()
		synctest.Wait()
		f.gw.Close()
		if err := <-done; err != nil {
			t.Fatalf("Await on Close = %v", err)
		}
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if _, err := f.gw.Await(ctx, "nope", "", time.Second); !errors.Is(err, gateway.ErrNotFound) {
			t.Errorf("bad id: %v", err)
		}
	})
}

func TestCancel(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		r := <-f.do(t.Context(), route(gateway.ModeAsync), gateway.Preferences{})
		m := <-f.pub.msgs
		waiting := make(chan error, 1)
		go func() {
			res, err := f.gw.Await(t.Context(), r.out.ID, "", time.Hour)
			if err == nil && res.State != correlation.StateCancelled {
				err = errors.New("state " + res.State.String())
			}
			waiting <- err
		}()
		synctest.Wait()
		if err := f.gw.Cancel(t.Context(), r.out.ID, ""); err != nil {
			t.Fatal(err)
		}
		if err := <-waiting; err != nil {
			t.Fatalf("a long poll must wake on cancel: %v", err)
		}
		if err := f.gw.Cancel(t.Context(), r.out.ID, ""); err != nil {
			t.Errorf("second cancel: %v", err)
		}
		if out := f.reply(t, m, "late"); out != gateway.ReplyCancelled {
			t.Errorf("late reply = %v, want cancelled", out)
		}
		if res, _ := f.gw.Result(t.Context(), r.out.ID, ""); res.State != correlation.StateCancelled {
			t.Errorf("state after the late reply = %v", res.State)
		}
		// A completed request cannot be cancelled; an unknown one is not found.
		r2 := <-f.do(t.Context(), route(gateway.ModeAsync), gateway.Preferences{})
		f.reply(t, <-f.pub.msgs, "done")
		if err := f.gw.Cancel(t.Context(), r2.out.ID, ""); !errors.Is(err, gateway.ErrCompleted) {
			t.Errorf("cancel after the reply: %v", err)
		}
		if err := f.gw.Cancel(t.Context(), correlation.NewID(), ""); !errors.Is(err, gateway.ErrNotFound) {
			t.Errorf("cancel unknown: %v", err)
		}
	})
}

func TestPreferWaitCappedByMaxWait(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := newFixture(t)
		rt := route(gateway.ModeAuto)
		rt.MaxWait = 3 * time.Second
		res := f.do(t.Context(), rt, gateway.Preferences{Wait: 8 * time.Second})
		<-f.pub.msgs
		r := <-res
		if !r.out.Accepted || r.elapsed != 3*time.Second || r.out.PreferenceApplied != "wait=3" {
			t.Fatalf("Do = %+v after %v; want 202 after the 3s cap", r.out, r.elapsed)
		}
	})
}
