package redisstate_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/correlation/correlationtest"
	"github.com/syncgate/syncgate/correlation/redisstate"
)

// failZAdd is a go-redis hook that fails every ZADD while it is on, as a
// Redis blip between two commands would.
type failZAdd struct{ on atomic.Bool }

var errBlip = errors.New("injected blip")

func (f *failZAdd) DialHook(next goredis.DialHook) goredis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) { return next(ctx, network, addr) }
}

func (f *failZAdd) ProcessHook(next goredis.ProcessHook) goredis.ProcessHook {
	return func(ctx context.Context, cmd goredis.Cmder) error {
		if f.on.Load() && strings.EqualFold(cmd.Name(), "zadd") {
			cmd.SetErr(errBlip)
			return errBlip
		}
		return next(ctx, cmd)
	}
}

func (f *failZAdd) ProcessPipelineHook(next goredis.ProcessPipelineHook) goredis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []goredis.Cmder) error {
		if f.on.Load() {
			for _, cmd := range cmds {
				if strings.EqualFold(cmd.Name(), "zadd") {
					cmd.SetErr(errBlip)
					return errBlip
				}
			}
		}
		return next(ctx, cmds)
	}
}

// TestCallbackSurvivesABlipAfterComplete: when Redis fails between
// Complete's script (which marks the callback pending) and its queueing,
// the delivery is due when the pending record would have expired, not
// lost.
func TestCallbackSurvivesABlipAfterComplete(t *testing.T) {
	ctx := t.Context()
	rdb, cfg := newClient(t)
	blip := &failZAdd{}
	rdb.AddHook(blip)
	s := redisstate.NewStore(rdb, cfg)

	id := correlation.NewID()
	const pendingTTL = 20 * time.Second
	if err := s.Pending(ctx, id, "", pendingTTL); err != nil {
		t.Fatal(err)
	}
	cb := correlation.Callback{URL: "https://hooks.example/done", Route: "orders", Until: time.Now().Add(time.Hour)}
	if err := s.SetCallback(ctx, id, cb); err != nil {
		t.Fatal(err)
	}
	blip.on.Store(true)
	if err := s.Complete(ctx, correlationtest.FullReply(id)); err != nil {
		t.Fatalf("Complete: %v (the queueing is best effort, the reply is stored)", err)
	}
	blip.on.Store(false)
	now := time.Now()
	if ids, err := s.ClaimDeliveries(ctx, now, 10, time.Minute); err != nil || len(ids) != 0 {
		t.Fatalf("ClaimDeliveries right after the blip = %v, %v; want none (the blip kept it from being due at once)", ids, err)
	}
	ids, err := s.ClaimDeliveries(ctx, now.Add(pendingTTL+time.Second), 10, time.Minute)
	if err != nil || len(ids) != 1 || ids[0] != id {
		t.Fatalf("ClaimDeliveries after the deadline = %v, %v; want [%s]", ids, err, id)
	}
	if res, err := s.Get(ctx, id); err != nil || res.Delivery == nil || res.Delivery.State != correlation.DeliveryPending {
		t.Fatalf("record after the blip: %+v, %v; want a pending delivery", res, err)
	}

	// A blip while the callback is set is an error, which the caller
	// sees (the gateway logs it, or fails the async request).
	other := correlation.NewID()
	if err := s.Pending(ctx, other, "", pendingTTL); err != nil {
		t.Fatal(err)
	}
	blip.on.Store(true)
	defer blip.on.Store(false)
	if err := s.SetCallback(ctx, other, cb); !errors.Is(err, redisstate.ErrUnavailable) {
		t.Errorf("SetCallback during a blip = %v, want ErrUnavailable", err)
	}
}
