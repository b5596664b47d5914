package gateway

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/syncgate/syncgate/brokers"
)

// Membership is what adoption needs of the cluster's members: who they
// are, who is alive, and who adopted whom. correlation.MemoryRouter and
// redisstate.Router implement it.
type Membership interface {
	// Members returns every registered node and its reply address.
	Members(ctx context.Context) (map[string]string, error)
	// Live reports whether a live process holds node's id.
	Live(ctx context.Context, node string) (bool, error)
	// Adopt makes by the one adopter of node for ttl (false: another node
	// is); by calls it again to keep it.
	Adopt(ctx context.Context, node, by string, ttl time.Duration) (bool, error)
	// AdoptedBy returns node's adopter, or "".
	AdoptedBy(ctx context.Context, node string) (string, error)
	// Unadopt gives up by's adoption of node, if by holds it.
	Unadopt(ctx context.Context, node, by string) error
	// Forget removes node from the members.
	Forget(ctx context.Context, node string) error
}

// ReplySubscriber consumes a reply address (a brokers.Subscriber).
type ReplySubscriber interface {
	Subscribe(ctx context.Context, source string, h brokers.Handler, opts ...brokers.SubscribeOption) error
}

// AdopterConfig configures an Adopter.
type AdopterConfig struct {
	// Node is this node's id.
	Node       string
	Members    Membership
	Subscriber ReplySubscriber
	// Handler handles the replies consumed from an adopted address: the
	// node's ordinary reply handler (DispatchReply, instrumented).
	Handler brokers.Handler
	// Every is how often to look for dead nodes: the lease TTL. An
	// adoption is held for three rounds, so one missed refresh does not
	// hand it to another node.
	Every time.Duration
	// Keep is how long an adoption lasts at most: the longest route
	// timeout plus the claim margin, after which no request of the dead
	// node can still be waiting.
	Keep time.Duration
	// Concurrency is the handlers per adopted address (WithConcurrency).
	Concurrency int
	// Logger gets the adopter's lines, under component adopter (default
	// slog.Default()).
	Logger *slog.Logger
}

// Adopter consumes the reply addresses of dead nodes (cluster mode). A
// node that dies leaves replies addressed to it: those of its requests in
// flight, some of them accepted with 202 and polled elsewhere. Every
// round, each node looks for members whose lease lapsed; one of them
// adopts each such node (Membership.Adopt, refreshed while it lasts) and
// consumes its reply address with the ordinary reply handler, which stores
// those replies (pollable routes) or forwards them (the owner is gone, so
// they reach nobody). The adoption ends when the node is back, or once no
// request of it can still be waiting (Keep): then the node is forgotten.
type Adopter struct {
	cfg AdopterConfig
	log *slog.Logger

	mu       sync.Mutex
	adopting map[string]*adoption
}

type adoption struct {
	since  time.Time
	cancel context.CancelFunc
	done   chan struct{}
}

// NewAdopter returns an adopter; Run starts it.
func NewAdopter(cfg AdopterConfig) *Adopter {
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return &Adopter{cfg: cfg, log: cfg.Logger.With(slog.String("component", "adopter")), adopting: make(map[string]*adoption)}
}

// Run looks for dead nodes every cfg.Every until ctx ends, then stops
// every adoption and gives them up; it returns once their consumers have
// returned.
func (a *Adopter) Run(ctx context.Context) {
	defer a.stopAll()
	t := time.NewTicker(a.cfg.Every)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		a.round(ctx)
	}
}

// Adopting returns the nodes this node consumes the replies of.
func (a *Adopter) Adopting() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.adopting))
	for node := range a.adopting {
		out = append(out, node)
	}
	return out
}

func (a *Adopter) round(ctx context.Context) {
	self, m := a.cfg.Node, a.cfg.Members
	// (The lease keeps this node among the members, also after a Redis
	// restart: see Lease.Advertise.)
	members, err := m.Members(ctx)
	if err != nil {
		return // the cluster state is unreachable: the next round tries again
	}
	for node, replyTo := range members {
		if node == self {
			continue
		}
		live, err := m.Live(ctx, node)
		if err != nil {
			return
		}
		a.mu.Lock()
		ad := a.adopting[node]
		a.mu.Unlock()
		switch {
		case live && ad != nil:
			a.log.Info("node is back; ending its adoption", slog.String("adopted", node))
			a.stop(node)
			_ = m.Unadopt(ctx, node, self)
		case live:
			// Ours from an adoption whose consumer failed? Let it go.
			_ = m.Unadopt(ctx, node, self)
		case ad != nil && time.Since(ad.since) > a.cfg.Keep:
			a.log.Info("adoption over: no request of the node can still be waiting",
				slog.String("adopted", node), slog.Duration("after", time.Since(ad.since)))
			a.stop(node)
			_ = m.Forget(ctx, node)
			_ = m.Unadopt(ctx, node, self)
		default:
			// Take it, or keep it: the key lives three rounds, so a
			// missed refresh does not hand it to another node.
			ok, err := m.Adopt(ctx, node, self, 3*a.cfg.Every)
			if err == nil && !ok && ad != nil {
				// Another node holds it now (this one missed its
				// refreshes): one consumer is enough.
				a.stop(node)
			}
			if err != nil || !ok || ad != nil {
				continue
			}
			a.start(ctx, node, replyTo)
		}
	}
}

func (a *Adopter) start(ctx context.Context, node, replyTo string) {
	sctx, cancel := context.WithCancel(ctx)
	ad := &adoption{since: time.Now(), cancel: cancel, done: make(chan struct{})}
	a.mu.Lock()
	a.adopting[node] = ad
	a.mu.Unlock()
	a.log.Warn("node is gone; consuming its reply address", slog.String("adopted", node), slog.String("reply_to", replyTo))
	go func() {
		defer close(ad.done)
		err := a.cfg.Subscriber.Subscribe(sctx, replyTo, a.cfg.Handler, brokers.AsInbox(),
			brokers.WithConcurrency(a.cfg.Concurrency))
		if err != nil && sctx.Err() == nil {
			a.log.Warn("consuming an adopted reply address failed; the next round retries",
				slog.String("adopted", node), slog.Any("error", err))
			a.mu.Lock()
			if a.adopting[node] == ad {
				delete(a.adopting, node)
			}
			a.mu.Unlock()
		}
	}()
}

func (a *Adopter) stop(node string) {
	a.mu.Lock()
	ad := a.adopting[node]
	delete(a.adopting, node)
	a.mu.Unlock()
	if ad != nil {
		ad.cancel()
		<-ad.done
	}
}

func (a *Adopter) stopAll() {
	a.mu.Lock()
	nodes := make([]string, 0, len(a.adopting))
	for node := range a.adopting {
		nodes = append(nodes, node)
	}
	a.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, node := range nodes {
		a.stop(node)
		_ = a.cfg.Members.Unadopt(ctx, node, a.cfg.Node)
	}
}

// AwaitHandBack waits, before node consumes its own reply address, until
// no other node consumes it for it: a node back under its id after a crash
// may find its address adopted, and two consumers of one Kafka reply topic
// would each read every reply. The adopter lets go at its next round,
// within one lease TTL; the wait is bounded by within (the adoption's own
// TTL, three lease TTLs), after which node consumes anyway.
func AwaitHandBack(ctx context.Context, m Membership, node string, within time.Duration, log *slog.Logger) {
	deadline := time.Now().Add(within)
	logged := false
	for time.Now().Before(deadline) {
		by, err := m.AdoptedBy(ctx, node)
		if err != nil || by == "" {
			return
		}
		if !logged {
			log.Info("cluster: waiting for the node that adopted this node's reply address to hand it back", slog.String("adopter", by))
			logged = true
		}
		t := time.NewTimer(50 * time.Millisecond)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
	}
	log.Warn("cluster: the adopter did not hand this node's reply address back in time; consuming it anyway")
}
