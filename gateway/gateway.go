package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

var (
	// ErrTimeout: a sync route's budget ran out before the reply came (504).
	ErrTimeout = errors.New("gateway: reply timed out")
	// ErrUnavailable: the request could not be handed to the broker (503).
	ErrUnavailable = errors.New("gateway: broker unavailable")
	// ErrShuttingDown: the gateway is stopping and a sync route cannot wait (503).
	ErrShuttingDown = errors.New("gateway: shutting down")
	// ErrStore: the result store failed, so a 202 could not be promised (503).
	ErrStore = errors.New("gateway: result store unavailable")
	// ErrStoreFull: the result or idempotency store holds as much as it may,
	// all of it owed to earlier requests, so a request that may need a
	// record is refused before it is published (503 with Retry-After).
	ErrStoreFull = errors.New("gateway: store full")
	// ErrNotFound: no such request to poll (unknown or expired) (404).
	ErrNotFound = correlation.ErrNotFound
)

// Publisher is what the gateway needs of a broker.
type Publisher interface {
	Publish(ctx context.Context, dest string, m brokers.Message) error
}

// Store keeps the state of requests answered with 202, so that any node can
// serve the poll. correlation.MemoryStore implements it.
type Store interface {
	// Pending records an accepted request for ttl; a no-op if a record exists.
	Pending(ctx context.Context, id string, ttl time.Duration) error
	// Complete stores a reply: correlation.ErrNotFound if no record,
	// correlation.ErrCompleted if one is stored already.
	Complete(ctx context.Context, rep envelope.Reply) error
	Get(ctx context.Context, id string) (correlation.Result, error)
	Delete(ctx context.Context, id string) error
	// Cancel marks a pending record cancelled: correlation.ErrNotFound if no
	// record, correlation.ErrCompleted if the reply is stored.
	Cancel(ctx context.Context, id string) error
}

// boundedStore is a Store that bounds its own room and refuses new records
// when full (correlation.MemoryStore). A store without it (Redis) is
// bounded by its server.
type boundedStore interface {
	// Room fails, wrapping correlation.ErrFull, when Pending would refuse
	// a new record now.
	Room() error
	// Promise is Pending for a request already published: never refused
	// for room.
	Promise(ctx context.Context, id string, ttl time.Duration) error
}

// durableStore is a Store that says whether its records outlive this
// process (redisstate.Store's do; correlation.MemoryStore's do not). A Store
// that does not say is taken to die with the process.
type durableStore interface {
	OutlivesProcess() bool
}

// Config configures a Gateway.
type Config struct {
	// ReplyTo is this node's reply address, sent with every request.
	ReplyTo string
	// PublishTimeout caps one publish (default 5 s); the request's own
	// deadline caps it further.
	PublishTimeout time.Duration
	// RetryAfter is the poll interval suggested with 202 (default 1 s).
	RetryAfter time.Duration
	// Idempotency binds Idempotency-Keys to requests (default: an in-memory
	// store with a 24 h TTL).
	Idempotency IdempotencyStore
	// IdempotencyTTL is how long the result of a request with a key is kept
	// for replays (default 24 h); it should match the Idempotency store's TTL
	// and is capped by the result store's own bounds.
	IdempotencyTTL time.Duration
	// Cluster, when set, makes this gateway one node of several (see
	// Cluster); Store and Idempotency must then be shared by the nodes.
	Cluster *Cluster
	// RecentReplies is how many answered correlation ids the node
	// remembers to count a second reply as a duplicate, not an orphan
	// (default DefaultRecentReplies; see recent).
	RecentReplies int
	Logger        *slog.Logger
}

// Gateway runs requests through a broker. Create it with New.
type Gateway struct {
	cfg     Config
	pub     Publisher
	store   Store
	bounded boundedStore // store, when it bounds its room; else nil
	// local: the store's records die with this process (see durableStore).
	local    bool
	registry *correlation.Registry
	idem     IdempotencyStore
	hub      *hub
	answered *recent
	log      *slog.Logger
	// draining is set by Drain (and Close): the node is stopping.
	draining atomic.Bool
	replies  [numReplyOutcomes]atomic.Uint64
	// forwards counts AcceptForwarded's outcomes; clusterErrs the failed
	// Router and Store calls of cluster mode.
	forwards    [numReplyOutcomes]atomic.Uint64
	clusterErrs [numClusterOps]atomic.Uint64
}

// New returns a gateway publishing through pub and parking results in store.
func New(cfg Config, pub Publisher, store Store) *Gateway {
	if cfg.PublishTimeout <= 0 {
		cfg.PublishTimeout = 5 * time.Second
	}
	if cfg.RetryAfter <= 0 {
		cfg.RetryAfter = time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.IdempotencyTTL <= 0 {
		cfg.IdempotencyTTL = 24 * time.Hour
	}
	if cfg.Cluster != nil && cfg.Cluster.ClaimMargin <= 0 {
		c := *cfg.Cluster
		c.ClaimMargin = 5 * time.Second
		cfg.Cluster = &c
	}
	if cfg.RecentReplies <= 0 {
		cfg.RecentReplies = DefaultRecentReplies
	}
	if cfg.Idempotency == nil {
		cfg.Idempotency = correlation.NewMemoryIdempotency(correlation.MemoryIdempotencyConfig{TTL: cfg.IdempotencyTTL})
	}
	bounded, _ := store.(boundedStore)
	durable, _ := store.(durableStore)
	return &Gateway{
		cfg: cfg, pub: pub, store: store, bounded: bounded, local: durable == nil || !durable.OutlivesProcess(),
		registry: correlation.NewRegistry(),
		idem:     cfg.Idempotency, hub: newHub(), answered: newRecent(cfg.RecentReplies), log: cfg.Logger.With(slog.String("component", "gateway")),
	}
}

// Request is one call of a route.
type Request struct {
	Route *Route
	// ID is the correlation id; empty means a fresh one (correlation.NewID).
	ID string
	// Message holds what is forwarded to the service: content type, method,
	// path, query, allow-listed headers, trace context, idempotency key,
	// body. Its CorrelationID, ReplyTo and Deadline are set by the gateway.
	Message envelope.Request
	Prefer  Preferences
}

// Outcome is the result of Do: either a Reply, or Accepted (202).
type Outcome struct {
	ID                string
	Reply             envelope.Reply // valid when !Accepted
	Accepted          bool           // 202: poll for the result
	RetryAfter        time.Duration  // with Accepted
	PreferenceApplied string         // for the Preference-Applied header
	// Attached: the Idempotency-Key was bound to the earlier request ID;
	// this outcome is that request's.
	Attached bool
	// Sent is when the request was handed to the publisher; Replied when its
	// reply reached this request (zero when it did not). Replied-Sent is the
	// broker round trip.
	Sent, Replied time.Time
}

// Do publishes the request and waits for its reply as the route allows.
// Errors wrap ErrTimeout, ErrUnavailable, ErrShuttingDown, ErrStore,
// ErrStoreFull, ErrKeyRequired, ErrKeyMismatch, ErrKeyConflict, ErrCancelled, or the ctx's
// error when the client went away.
//
// A request with an idempotency key that is bound already publishes
// nothing: it attaches to the first request with that key (see attach).
func (g *Gateway) Do(ctx context.Context, req Request) (Outcome, error) {
	r := req.Route
	id := req.ID
	if id == "" {
		id = correlation.NewID()
	}
	wait, async, applied := r.plan(req.Prefer)
	out := Outcome{ID: id, PreferenceApplied: applied, RetryAfter: g.cfg.RetryAfter}
	if async && g.localResults() && g.draining.Load() {
		// A 202 now would name a Location that dies with this process.
		return out, ErrShuttingDown
	}
	keyed := req.Message.IdempotencyKey != ""
	if !keyed && r.RequireKey {
		return out, ErrKeyRequired
	}
	if keyed {
		// The record goes before the key: whoever finds the key bound finds
		// the record too, and waits on it.
		if err := g.store.Pending(ctx, id, max(r.Timeout, g.cfg.IdempotencyTTL)); err != nil {
			return out, storeError(err)
		}
		rec, created, err := g.reserve(ctx, req, id)
		if err != nil || !created {
			_ = g.store.Delete(context.WithoutCancel(ctx), id)
		}
		if err != nil {
			return out, err
		}
		if !created {
			out.ID, out.Attached = rec.ID, true
			return g.attach(ctx, r, out, wait, async)
		}
	}
	start := time.Now()
	deadline := start.Add(r.Timeout)
	msg := req.Message
	msg.CorrelationID, msg.ReplyTo, msg.Deadline = id, g.cfg.ReplyTo, deadline

	// The record goes first: the reply may land before we answer 202. (A
	// request with a key has one already, kept for replays.)
	if async && !keyed {
		if err := g.store.Pending(ctx, id, r.Timeout); err != nil {
			return out, storeError(err)
		}
	} else if r.Pollable() && !keyed && g.bounded != nil {
		// It may answer 202 after its wait, and then its record cannot be
		// refused (see giveUp): the room is checked now, before anything
		// is published. Sync routes never need a record: no check.
		if err := g.bounded.Room(); err != nil {
			return out, storeError(err)
		}
	}
	fail := func(err error) (Outcome, error) {
		if keyed {
			g.release(ctx, req, id)
		} else if async {
			_ = g.store.Delete(context.WithoutCancel(ctx), id)
		}
		return out, err
	}
	if async {
		out.Sent = time.Now()
		if err := g.publish(ctx, r, msg, deadline); err != nil {
			return fail(err)
		}
		out.Accepted = true
		return out, nil
	}

	w, err := g.registry.Register(id)
	if err != nil {
		if errors.Is(err, correlation.ErrClosed) {
			return fail(ErrShuttingDown)
		}
		return fail(fmt.Errorf("gateway: register %s: %w", id, err))
	}
	if g.cfg.Cluster != nil {
		g.clusterBegin(ctx, r, id, keyed)
	}
	out.Sent = time.Now()
	if err := g.publish(ctx, r, msg, deadline); err != nil {
		w.Cancel()
		if g.cfg.Cluster != nil && r.Pollable() && !keyed {
			_ = g.store.Delete(context.WithoutCancel(ctx), id)
		}
		return fail(err)
	}
	got := func(rep envelope.Reply) (Outcome, error) {
		out.Reply, out.Replied = rep, time.Now()
		if keyed {
			g.completed(ctx, rep)
		}
		return out, nil
	}

	timer := time.NewTimer(wait)
	defer timer.Stop()
	for {
		select {
		case rep, ok := <-w.C():
			if ok {
				return got(rep)
			}
			// The registry closed: the gateway is shutting down.
			return g.giveUp(ctx, r, w, out, ErrShuttingDown, deadline, got)
		case <-timer.C:
			if g.holdWhileDraining(r) && time.Now().Before(deadline) {
				// No 202 from a stopping node whose results die with it:
				// wait on for the reply, until the deadline or Close.
				timer.Reset(time.Until(deadline))
				continue
			}
			return g.giveUp(ctx, r, w, out, ErrTimeout, deadline, got)
		case <-ctx.Done():
			// The client went away; nobody can poll an id they never received
			// (unless it has a key: then a retry attaches to the stored record).
			if rep, ok := w.Cancel(); ok {
				return got(rep)
			}
			return out, ctx.Err()
		}
	}
}

// localResults reports whether the result store lives and dies with this
// process (a property of the Store, see durableStore): a Location it names
// is served by no one once the process exits.
func (g *Gateway) localResults() bool { return g.local }

// holdWhileDraining reports whether a request of r whose wait ran out must
// not be answered 202 because the node is stopping and its results are
// local (see Drain).
func (g *Gateway) holdWhileDraining(r *Route) bool {
	return r.Pollable() && g.localResults() && g.draining.Load()
}

// giveUp ends a wait without a reply: 202 on pollable routes, cause otherwise.
// On pollable routes the pending record is written before the waiter is
// removed, so a reply arriving in between is either returned by Cancel or
// finds the record and is stored: never lost.
func (g *Gateway) giveUp(ctx context.Context, r *Route, w *correlation.Waiter, out Outcome, cause error, deadline time.Time,
	got func(envelope.Reply) (Outcome, error)) (Outcome, error) {
	if !r.Pollable() || g.holdWhileDraining(r) {
		if rep, ok := w.Cancel(); ok {
			return got(rep)
		}
		if r.Pollable() {
			// See holdWhileDraining: no 202 the process cannot keep.
			return out, ErrShuttingDown
		}
		return out, cause
	}
	ttl := time.Until(deadline)
	storeErr := g.promise(context.WithoutCancel(ctx), out.ID, max(ttl, time.Second))
	if rep, ok := w.Cancel(); ok {
		if storeErr == nil {
			// The record is written already: make it tell the truth.
			_ = g.store.Complete(context.WithoutCancel(ctx), rep)
		}
		return got(rep)
	}
	if storeErr != nil {
		return out, storeError(storeErr)
	}
	if g.cfg.Cluster != nil {
		// Another node may have stored the reply and lost the forward.
		if rep, ok := g.storedReply(context.WithoutCancel(ctx), out.ID); ok {
			return got(rep)
		}
	}
	out.Accepted = true
	return out, nil
}

// promise writes the pending record of a request answered 202 after its
// wait. The request was admitted with room (Do checks Room) and has been
// published, so a bounded store must not refuse it now.
func (g *Gateway) promise(ctx context.Context, id string, ttl time.Duration) error {
	if g.bounded != nil {
		return g.bounded.Promise(ctx, id, ttl)
	}
	return g.store.Pending(ctx, id, ttl)
}

// storeError wraps a store's refusal to write a record: ErrStoreFull when
// it is full (room comes back as results expire: retry later), ErrStore
// when it failed.
func storeError(err error) error {
	if errors.Is(err, correlation.ErrFull) || errors.Is(err, correlation.ErrIdempotencyFull) {
		return fmt.Errorf("%w: %w", ErrStoreFull, err)
	}
	return fmt.Errorf("%w: %w", ErrStore, err)
}

func (g *Gateway) publish(ctx context.Context, r *Route, msg envelope.Request, deadline time.Time) error {
	if d := time.Now().Add(g.cfg.PublishTimeout); d.Before(deadline) {
		deadline = d
	}
	pctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := g.pub.Publish(pctx, r.Destination, msg.Message()); err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // the client went away, not the broker
		}
		return fmt.Errorf("%w: publish to %q: %w", ErrUnavailable, r.Destination, err)
	}
	return nil
}

// Waiting returns how many requests wait for a reply on this node.
func (g *Gateway) Waiting() int { return g.registry.Len() }

// Drain tells the gateway that its node is stopping. Where results are
// local to the process (the Store does not outlive it), no request is answered 202 from
// then on, since its Location would die with the process: async requests
// fail with ErrShuttingDown before they are published, and a request whose
// wait runs out goes on waiting for its reply until its deadline or Close.
// Where results outlive the node, Drain changes nothing.
func (g *Gateway) Drain() { g.draining.Store(true) }

// Close wakes every waiting request: pollable routes answer 202 where the
// result store outlives the node (redisstate), every other request
// ErrShuttingDown; long polls answer the pending state. Close implies Drain.
// Later calls of Do fail with ErrShuttingDown (sync/auto).
func (g *Gateway) Close() {
	g.Drain()
	g.registry.Close()
	g.hub.close()
}
