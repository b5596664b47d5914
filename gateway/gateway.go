package gateway

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
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
	// Pending records an accepted request of principal ("" when
	// anonymous) for ttl; a no-op if a record exists. Get returns the
	// principal with the record.
	Pending(ctx context.Context, id, principal string, ttl time.Duration) error
	// Complete stores a reply: correlation.ErrNotFound if no record,
	// correlation.ErrCompleted if one is stored already.
	Complete(ctx context.Context, rep envelope.Reply) error
	Get(ctx context.Context, id string) (correlation.Result, error)
	Delete(ctx context.Context, id string) error
	// Cancel marks a pending record of principal cancelled:
	// correlation.ErrNotFound if no record or another principal's,
	// correlation.ErrCompleted if the reply is stored.
	Cancel(ctx context.Context, id, principal string) error
	// Progress keeps a progress message of a pending request and returns
	// its sequence number: correlation.ErrNotFound if no record,
	// ErrCompleted or ErrCancelled once it has ended, an error wrapping
	// correlation.ErrFull when there is no room.
	Progress(ctx context.Context, id string, p correlation.Progress) (int, error)
	// Events is Get with the progress messages kept after sequence
	// number after.
	Events(ctx context.Context, id string, after int) (correlation.Result, error)
	// SetCallback records the callback of a pending request; Complete
	// then queues its delivery (see push/webhook). Errors as Progress's.
	SetCallback(ctx context.Context, id string, cb correlation.Callback) error
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
	Promise(ctx context.Context, id, principal string, ttl time.Duration) error
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
	// Outbox, when set, queues the requests of routes with Route.Outbox
	// that the broker did not take (see Outbox); the caller runs its
	// relay.
	Outbox Outbox
	// RecentReplies is how many answered correlation ids the node
	// remembers to count a second reply as a duplicate, not an orphan
	// (default DefaultRecentReplies; see recent).
	RecentReplies int
	// Gathers says that a route scatters (Route.Parts): a part's reply
	// stored on this node then completes its request even if this node
	// has run none yet (another node of the cluster answered it 202).
	Gathers bool
	Logger  *slog.Logger
}

// Gateway runs requests through a broker. Create it with New.
type Gateway struct {
	cfg     Config
	pub     Publisher
	store   Store
	bounded boundedStore // store, when it bounds its room; else nil
	parts   partsStore   // store, when it keeps scatter-gather requests; else nil
	// local: the store's records die with this process (see durableStore).
	local    bool
	registry *correlation.Registry
	idem     IdempotencyStore
	hub      *hub
	answered *recent
	// unneeded remembers the scatter-gather parts answered without their
	// reply on this node (see ReplyUnneeded), as answered does replies.
	unneeded *recent
	place    placement // alone or member (cluster mode)
	log      *slog.Logger
	// draining is set by Drain (and Close): the node is stopping.
	draining atomic.Bool
	// forwards counts AcceptForwarded's outcomes; clusterErrs the failed
	// Router and Store calls of cluster mode.
	forwards    [numReplyOutcomes]atomic.Uint64
	clusterErrs [numClusterOps]atomic.Uint64
	// gathers is set once this node has run a scatter-gather request (or
	// Config.Gathers says a route scatters): a reply stored from then on
	// may complete one (partStored).
	gathers    atomic.Bool
	partMu     sync.Mutex
	partCounts map[PartKey]uint64
	// timers settle scatter-gather requests at their deadlines
	// (settleLater); Close stops them.
	timerMu      sync.Mutex
	timers       map[*time.Timer]struct{}
	timersClosed bool
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
	parts, _ := store.(partsStore)
	durable, _ := store.(durableStore)
	g := &Gateway{
		cfg: cfg, pub: pub, store: store, bounded: bounded, parts: parts, local: durable == nil || !durable.OutlivesProcess(),
		registry: correlation.NewRegistry(),
		idem:     cfg.Idempotency, hub: newHub(), answered: newRecent(cfg.RecentReplies), unneeded: newRecent(cfg.RecentReplies), log: cfg.Logger.With(slog.String("component", "gateway")),
	}
	g.gathers.Store(cfg.Gathers)
	g.place = alone{g}
	if cfg.Cluster != nil {
		g.place = member{g}
	}
	return g
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
	// Callback, when set, is the URL the reply is delivered to if the
	// request is answered 202 (its route's CallbackWindow must be set;
	// the caller checked the URL). A request answered with its reply on
	// the connection has no delivery.
	Callback string
	// Principal is the authenticated caller ("" when anonymous). It owns
	// the request (nobody else can poll or cancel it, unless it is ""),
	// scopes its Idempotency-Key, and is what the service sees as the
	// principal: the gateway sets Message.Principal from it, whatever
	// Message held.
	Principal string
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
	// Queued (with Accepted): the broker did not take the request, and it
	// waits in the outbox.
	Queued bool
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
//
// One path for every node: what differs between a node alone and a node of
// a cluster is behind g.place (see placement).
func (g *Gateway) Do(ctx context.Context, req *Request) (Outcome, error) {
	// The call works on req in place and keeps the outcome: the steps
	// below take c by pointer and return an error, so that no frame but
	// this one holds the outcome and none a copy of the request. A request
	// waits for its reply on this stack, thousands at once: every frame
	// here is memory per waiting request.
	c := call{g: g, r: req.Route, req: req}
	c.init()
	err := c.do(ctx)
	return c.out, err
}

func (c *call) do(ctx context.Context) error {
	if err := c.admit(); err != nil {
		return err
	}
	if c.keyed {
		attached, err := c.bindKey(ctx)
		if err != nil {
			return err
		}
		if attached {
			return c.attach(ctx)
		}
	}
	if c.r.scatters() {
		return c.gather(ctx)
	}
	c.message()
	if err := c.makeRoom(ctx); err != nil {
		return err
	}
	if c.async {
		if err := c.setCallback(ctx); err != nil {
			return c.fail(ctx, err)
		}
		return c.publishOnly(ctx)
	}
	return c.publishAndWait(ctx)
}

// call is one request on its way through Do.
type call struct {
	g        *Gateway
	r        *Route
	req      *Request        // the caller's, its Message completed by message
	msg      brokers.Message // req.Message encoded, by message
	keyed    bool            // it carries an Idempotency-Key
	async    bool            // 202 at once, no wait
	wait     time.Duration   // how long to hold the connection
	deadline time.Time       // the request's budget, set by message
	out      Outcome
}

func (c *call) init() {
	req := c.req
	id := req.ID
	if id == "" {
		id = correlation.NewID()
	}
	var applied string
	c.wait, c.async, applied = req.Route.plan(req.Prefer)
	c.keyed = req.Message.IdempotencyKey != ""
	c.out = Outcome{ID: id, PreferenceApplied: applied, RetryAfter: c.g.cfg.RetryAfter}
}

// attach answers as the earlier request the key is bound to (see
// Gateway.attach).
func (c *call) attach(ctx context.Context) error {
	var err error
	c.out, err = c.g.attach(ctx, c.r, c.req.Principal, c.out, c.wait, c.async)
	return err
}

// admit refuses what cannot start: a 202 from a stopping node whose
// results die with it, a request without the key its route requires.
func (c *call) admit() error {
	if c.async && c.g.local && c.g.draining.Load() {
		// A 202 now would name a Location that dies with this process.
		return ErrShuttingDown
	}
	if !c.keyed && c.r.RequireKey {
		return ErrKeyRequired
	}
	return nil
}

// bindKey binds the request's Idempotency-Key to its id, or reports that
// the key is bound to an earlier request already (attached: out then names
// that request). The record goes before the key: whoever finds the key
// bound finds the record too, and waits on it.
func (c *call) bindKey(ctx context.Context) (attached bool, err error) {
	g, id := c.g, c.out.ID
	if err := g.store.Pending(ctx, id, c.req.Principal, max(c.r.Timeout, g.cfg.IdempotencyTTL)); err != nil {
		return false, storeError(err)
	}
	rec, created, err := g.reserve(ctx, c.req, id)
	if err != nil || !created {
		_ = g.store.Delete(context.WithoutCancel(ctx), id)
	}
	if err != nil {
		return false, err
	}
	if !created {
		c.out.ID, c.out.Attached = rec.ID, true
		return true, nil
	}
	return false, nil
}

// message completes and encodes the request as published, its budget
// starting now. Encoding here, not in publish, keeps the deepest point of
// a request's stack (building the header map) a few frames higher: that
// depth decides the stack every waiting request keeps.
func (c *call) message() {
	c.deadline = time.Now().Add(c.r.Timeout)
	msg := &c.req.Message
	msg.CorrelationID, msg.ReplyTo, msg.Deadline = c.out.ID, c.g.cfg.ReplyTo, c.deadline
	msg.Principal = c.req.Principal
	c.msg = msg.Message()
}

// makeRoom writes the record of an async request before it is published
// (its reply may land before the 202 is written), and checks a bounded
// store's room for a request that may end in 202 after its wait (its
// record then cannot be refused: see giveUp). A request with a key has its
// record already; sync routes never need one.
func (c *call) makeRoom(ctx context.Context) error {
	g := c.g
	switch {
	case c.keyed:
	case c.async:
		if err := g.store.Pending(ctx, c.out.ID, c.req.Principal, c.r.Timeout); err != nil {
			return storeError(err)
		}
	case c.r.Pollable() && g.bounded != nil:
		if err := g.bounded.Room(); err != nil {
			return storeError(err)
		}
	}
	return nil
}

// setCallback records the request's callback, if any, on its record:
// before the publish for an async request (its reply may come at once),
// after the waiter is gone for one whose wait ran out (see giveUp).
func (c *call) setCallback(ctx context.Context) error {
	if c.req.Callback == "" || c.r.CallbackWindow <= 0 {
		return nil
	}
	cb := correlation.Callback{URL: c.req.Callback, Route: c.r.Name, Until: time.Now().Add(c.r.CallbackWindow)}
	if err := c.g.store.SetCallback(ctx, c.out.ID, cb); err != nil {
		return storeError(err)
	}
	return nil
}

// fail undoes what Do wrote for a request that was not published.
func (c *call) fail(ctx context.Context, err error) error {
	if c.keyed {
		c.g.release(ctx, c.req, c.out.ID)
	} else if c.async {
		_ = c.g.store.Delete(context.WithoutCancel(ctx), c.out.ID)
	}
	return err
}

// publishOnly publishes an async request: 202 at once.
func (c *call) publishOnly(ctx context.Context) error {
	c.out.Sent = time.Now()
	if err := c.g.publish(ctx, c.r, c.msg, c.deadline); err != nil {
		queued, err := c.enqueue(ctx, err)
		if queued {
			return nil
		}
		return c.fail(ctx, err)
	}
	c.out.Accepted = true
	return nil
}

// publishAndWait registers the request's waiter, publishes, and waits.
func (c *call) publishAndWait(ctx context.Context) error {
	g, id := c.g, c.out.ID
	w, err := g.registry.Register(id)
	if err != nil {
		if errors.Is(err, correlation.ErrClosed) {
			return c.fail(ctx, ErrShuttingDown)
		}
		return c.fail(ctx, fmt.Errorf("gateway: register %s: %w", id, err))
	}
	g.place.begin(ctx, c.r, id, c.req.Principal, c.keyed)
	c.out.Sent = time.Now()
	if err := g.publish(ctx, c.r, c.msg, c.deadline); err != nil {
		w.Cancel() // nothing was published: no reply can have come
		queued, err := c.enqueue(ctx, err)
		if queued {
			return nil
		}
		g.place.unpublished(ctx, c.r, id, c.keyed)
		return c.fail(ctx, err)
	}
	return c.await(ctx, w)
}

// await waits for the reply, the end of the wait (giveUp), the gateway's
// Close, or the client going away.
func (c *call) await(ctx context.Context, w *correlation.Waiter) error {
	timer := time.NewTimer(c.wait)
	defer timer.Stop()
	for {
		select {
		case rep, ok := <-w.C():
			if ok {
				return c.got(ctx, rep)
			}
			// The registry closed: the gateway is shutting down.
			return c.giveUp(ctx, w, ErrShuttingDown)
		case <-timer.C:
			if c.g.holdWhileDraining(c.r) && time.Now().Before(c.deadline) {
				// No 202 from a stopping node whose results die with it:
				// wait on for the reply, until the deadline or Close.
				timer.Reset(time.Until(c.deadline))
				continue
			}
			return c.giveUp(ctx, w, ErrTimeout)
		case <-ctx.Done():
			// The client went away; nobody can poll an id they never received
			// (unless it has a key: then a retry attaches to the stored record).
			if rep, ok := w.Cancel(); ok {
				return c.got(ctx, rep)
			}
			return ctx.Err()
		}
	}
}

// got answers with the reply (and keeps it for replays of the key).
func (c *call) got(ctx context.Context, rep envelope.Reply) error {
	c.out.Reply, c.out.Replied = rep, time.Now()
	if c.keyed {
		c.g.completed(ctx, rep)
	}
	return nil
}

// holdWhileDraining reports whether a request of r whose wait ran out must
// not be answered 202 because the node is stopping and its results are
// local (see Drain).
func (g *Gateway) holdWhileDraining(r *Route) bool {
	return r.Pollable() && g.local && g.draining.Load()
}

// giveUp ends a wait without a reply: 202 on pollable routes, cause otherwise.
// On pollable routes the pending record is written before the waiter is
// removed, so a reply arriving in between is either returned by Cancel or
// finds the record and is stored: never lost.
func (c *call) giveUp(ctx context.Context, w *correlation.Waiter, cause error) error {
	g := c.g
	if !c.r.Pollable() || g.holdWhileDraining(c.r) {
		if rep, ok := w.Cancel(); ok {
			return c.got(ctx, rep)
		}
		if c.r.Pollable() {
			// See holdWhileDraining: no 202 the process cannot keep.
			return ErrShuttingDown
		}
		return cause
	}
	ttl := time.Until(c.deadline)
	w.QueueProgress() // progress that comes while the record is written is kept in order
	storeErr := g.promise(context.WithoutCancel(ctx), c.out.ID, c.req.Principal, max(ttl, time.Second))
	if storeErr == nil {
		g.keepHeldProgress(context.WithoutCancel(ctx), w)
	}
	if rep, ok := w.Cancel(); ok {
		if storeErr == nil {
			// The record is written already: make it tell the truth. It has
			// no callback yet, so nothing calls back a reply answered here.
			_ = g.store.Complete(context.WithoutCancel(ctx), rep)
		}
		return c.got(ctx, rep)
	}
	if storeErr != nil {
		return storeError(storeErr)
	}
	if rep, ok := g.place.storedElsewhere(context.WithoutCancel(ctx), c.out.ID); ok {
		return c.got(ctx, rep)
	}
	return c.accept(ctx)
}

// accept answers 202 a request whose wait ran out, its waiters gone and
// no reply stored. Only now the callback: a reply stored from here on is
// called back, and one stored in between makes SetCallback fail with
// ErrCompleted, so it is answered on the connection instead. Never both.
func (c *call) accept(ctx context.Context) error {
	if err := c.setCallback(context.WithoutCancel(ctx)); err != nil {
		if errors.Is(err, correlation.ErrCompleted) {
			if rep, ok := c.g.storedReply(context.WithoutCancel(ctx), c.out.ID); ok {
				return c.got(ctx, rep)
			}
		} else {
			c.g.log.WarnContext(ctx, "recording the callback of a request answered 202 failed: it may not be called back",
				slog.String("correlation_id", c.out.ID), slog.Any("error", err))
		}
	}
	c.out.Accepted = true
	return nil
}

// promise writes the pending record of a request answered 202 after its
// wait. The request was admitted with room (Do checks Room) and has been
// published, so a bounded store must not refuse it now.
func (g *Gateway) promise(ctx context.Context, id, principal string, ttl time.Duration) error {
	if g.bounded != nil {
		return g.bounded.Promise(ctx, id, principal, ttl)
	}
	return g.store.Pending(ctx, id, principal, ttl)
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

func (g *Gateway) publish(ctx context.Context, r *Route, m brokers.Message, deadline time.Time) error {
	return g.publishTo(ctx, r, r.Destination, m, deadline)
}

// publishTo publishes m, a request of r, to dest.
func (g *Gateway) publishTo(ctx context.Context, r *Route, dest string, m brokers.Message, deadline time.Time) error {
	if r.Profile != "" && r.Profile != envelope.ProfileSyncgate {
		r.Profile.Apply(m)
	}
	if d := time.Now().Add(g.cfg.PublishTimeout); d.Before(deadline) {
		deadline = d
	}
	pctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	if err := g.pub.Publish(pctx, dest, m); err != nil {
		if ctx.Err() != nil {
			return ctx.Err() // the client went away, not the broker
		}
		return fmt.Errorf("%w: publish to %q: %w", ErrUnavailable, dest, err)
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
	g.stopTimers()
}
