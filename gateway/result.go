package gateway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

var (
	// ErrCancelled: the request was cancelled with DELETE (410).
	ErrCancelled = correlation.ErrCancelled
	// ErrCompleted: a request that has its reply cannot be cancelled (409).
	ErrCompleted = correlation.ErrCompleted
	// errWaitOver: the wait budget passed with the result still pending.
	errWaitOver = errors.New("gateway: wait over")
)

// Result returns the stored state of a request accepted earlier, as
// principal ("" when anonymous) sees it: a request another principal made
// is ErrNotFound, as an unknown id is (see correlation.Result.VisibleTo).
func (g *Gateway) Result(ctx context.Context, id, principal string) (correlation.Result, error) {
	if _, err := envelope.ValidateID(id); err != nil {
		return correlation.Result{}, ErrNotFound
	}
	res, err := g.storeGet(ctx, id, principal)
	if err == nil {
		g.queued(ctx, id, &res)
	}
	return res, err
}

// storeGet reads the record of id as principal sees it: another
// principal's record is ErrNotFound, decided on the same read (no second
// round trip that would time differently from an unknown id). A failure
// of the store itself (not an unknown or cancelled id) wraps ErrStore, so
// the poll answers 503, not 500.
func (g *Gateway) storeGet(ctx context.Context, id, principal string) (correlation.Result, error) {
	res, err := g.store.Get(ctx, id)
	return g.callerRecord(ctx, id, principal, res, err)
}

// callerRecord is what a caller gets of a store read (res, err) of id:
// asSeenBy; a scatter-gather part is ErrNotFound (the caller holds its
// parent's id), and a scatter-gather request whose rule has decided is
// settled (gatherResult).
func (g *Gateway) callerRecord(ctx context.Context, id, principal string, res correlation.Result, err error) (correlation.Result, error) {
	res, err = asSeenBy(ctx, principal, res, err)
	if err != nil {
		return res, err
	}
	if res.Parent != "" {
		return correlation.Result{}, ErrNotFound
	}
	return g.gatherResult(ctx, id, res), nil
}

// asSeenBy maps a store read of a record (res, err) to what principal may
// see: another principal's record is ErrNotFound; a failure of the store
// itself wraps ErrStore.
func asSeenBy(ctx context.Context, principal string, res correlation.Result, err error) (correlation.Result, error) {
	if err != nil && !errors.Is(err, ErrNotFound) && !errors.Is(err, ErrCancelled) && ctx.Err() == nil {
		return res, fmt.Errorf("%w: %w", ErrStore, err)
	}
	if err == nil && !res.VisibleTo(principal) {
		return correlation.Result{}, ErrNotFound
	}
	return res, err
}

// Await is a long poll: it returns the stored state of a request as
// principal sees it as soon as it is no longer pending, or after d with
// the request still pending; a request another principal made is
// ErrNotFound at once, as an unknown id is. It
// wakes on the reply (no polling loop) when the reply reaches this node; a
// reply stored by another node (cluster mode) is seen at the next read of
// the store, at most a second later. On Close it returns
// the pending state at once.
func (g *Gateway) Await(ctx context.Context, id, principal string, d time.Duration) (correlation.Result, error) {
	if _, err := envelope.ValidateID(id); err != nil {
		return correlation.Result{}, ErrNotFound
	}
	res, err := g.awaitResult(ctx, id, principal, d)
	if errors.Is(err, errWaitOver) || errors.Is(err, ErrShuttingDown) {
		g.queued(ctx, id, &res)
		return res, nil
	}
	return res, err
}

// Events serves an event stream: it returns the record of id as principal
// sees it, with the progress messages kept after sequence number after, as
// soon as there are any or the request is no longer pending, or after d
// as it is (the stream's heartbeat). It wakes as Await does, and returns
// ErrShuttingDown when the gateway closes.
func (g *Gateway) Events(ctx context.Context, id, principal string, after int, d time.Duration) (correlation.Result, error) {
	if _, err := envelope.ValidateID(id); err != nil {
		return correlation.Result{}, ErrNotFound
	}
	res, err := g.awaitEvents(ctx, id, principal, max(after, 0), d)
	if errors.Is(err, errWaitOver) {
		return res, nil
	}
	return res, err
}

// awaitResult waits until the stored result of id is not pending, d passes
// (errWaitOver), the gateway closes (ErrShuttingDown) or ctx ends. A
// record principal may not see is ErrNotFound at the first read.
func (g *Gateway) awaitResult(ctx context.Context, id, principal string, d time.Duration) (correlation.Result, error) {
	return g.await(ctx, id, d, 50*time.Millisecond, time.Second, func() (correlation.Result, bool, error) {
		res, err := g.storeGet(ctx, id, principal)
		return res, err != nil || res.State != correlation.StatePending, err
	})
}

// awaitEvents is awaitResult that also returns on a progress message after
// sequence number after.
func (g *Gateway) awaitEvents(ctx context.Context, id, principal string, after int, d time.Duration) (correlation.Result, error) {
	// Watched (see Watch): the store's notifies wake the stream, and the
	// reads by itself are a fallback for a lost one.
	return g.await(ctx, id, d, eventsRecheck, eventsRecheck, func() (correlation.Result, bool, error) {
		res, err := g.storeEvents(ctx, id, principal, after)
		return res, err != nil || res.State != correlation.StatePending || len(res.Progress) > 0, err
	})
}

// eventsRecheck is the pause between an event stream's own reads of the
// store in cluster mode: with 10 000 streams on a node, 2 000 reads a
// second at most.
const eventsRecheck = 5 * time.Second

// await reads the record of id with read until read reports it is ready,
// d passes (errWaitOver, with the last record read), the gateway closes
// (ErrShuttingDown) or ctx ends. In cluster mode it also reads by itself,
// after firstRecheck at first, backing off to maxRecheck.
func (g *Gateway) await(ctx context.Context, id string, d, firstRecheck, maxRecheck time.Duration, read func() (correlation.Result, bool, error)) (correlation.Result, error) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	// In cluster mode another node may store the reply, and nothing may
	// wake this one: read the store again now and then.
	var recheck <-chan time.Time
	backoff := firstRecheck
	// Bounded: every round either returns or consumes one change of the
	// record (a record changes a bounded number of times: its progress
	// messages, then pending → done/cancelled → expired) or one recheck,
	// and rechecks end with the timer.
	for {
		e := g.hub.subscribe(id)
		res, ready, err := read()
		if ready {
			g.hub.release(id, e)
			return res, err
		}
		if g.place.recheck() {
			recheck = time.After(backoff)
			backoff = min(2*backoff, maxRecheck)
		}
		select {
		case <-recheck:
			g.hub.release(id, e)
		case <-e.ch:
			g.hub.release(id, e)
		case <-timer.C:
			g.hub.release(id, e)
			return res, errWaitOver
		case <-g.hub.closed:
			g.hub.release(id, e)
			return res, ErrShuttingDown
		case <-ctx.Done():
			g.hub.release(id, e)
			return res, ctx.Err()
		}
	}
}

// storeEvents is storeGet with the progress messages after after.
func (g *Gateway) storeEvents(ctx context.Context, id, principal string, after int) (correlation.Result, error) {
	res, err := g.store.Events(ctx, id, after)
	return g.callerRecord(ctx, id, principal, res, err)
}

// Cancel cancels a request accepted earlier, for principal: its late
// reply is discarded and later polls answer ErrCancelled. It fails with
// ErrNotFound (unknown, expired or another principal's: the store checks
// in the same step) or ErrCompleted (the reply is in). Cancelling twice
// is fine.
func (g *Gateway) Cancel(ctx context.Context, id, principal string) error {
	if _, err := envelope.ValidateID(id); err != nil {
		return ErrNotFound
	}
	if g.gathers.Load() {
		// A part is not the caller's to cancel: it holds the parent's id.
		if res, err := g.store.Get(ctx, id); err == nil && res.Parent != "" {
			return ErrNotFound
		}
	}
	if err := g.store.Cancel(ctx, id, principal); err != nil {
		if errors.Is(err, ErrNotFound) || errors.Is(err, ErrCompleted) {
			return err
		}
		return fmt.Errorf("%w: %w", ErrStore, err)
	}
	g.cancelParts(ctx, id, principal)
	g.hub.notify(id)
	return nil
}
