package node

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/correlation/redisstate"
)

// adopter consumes the reply addresses of dead nodes (cluster mode). A
// node that dies leaves replies addressed to it: those of its requests in
// flight, some of them accepted with 202 and polled elsewhere. Every lease
// TTL, each node looks for members whose lease lapsed; one of them adopts
// each such node (a Redis key, refreshed while it lasts) and consumes its
// reply address with the ordinary reply handler, which stores those
// replies (pollable routes) or forwards them (the owner is gone, so
// PUBLISH reaches nobody). The adoption ends when the node is back, or
// once no request of it can still be waiting (the longest route timeout
// plus the claim margin): then the node is forgotten.
type adopter struct {
	n       *Node
	router  *redisstate.Router
	handler brokers.Handler
	every   time.Duration // how often to look: the lease TTL
	keep    time.Duration // how long an adoption lasts at most
	log     *slog.Logger

	mu       sync.Mutex
	adopting map[string]*adoption
}

type adoption struct {
	replyTo string
	since   time.Time
	cancel  context.CancelFunc
	done    chan struct{}
}

func newAdopter(n *Node, h brokers.Handler) *adopter {
	keep := n.cfg.Cluster.ClaimMargin
	longest := time.Duration(0)
	for _, r := range n.cfg.Routes {
		longest = max(longest, r.Timeout)
	}
	return &adopter{
		n: n, router: n.router, handler: h, every: n.cfg.Cluster.LeaseTTL, keep: keep + longest,
		log: n.log.With(slog.String("component", "adopter")), adopting: make(map[string]*adoption),
	}
}

// run looks for dead nodes until ctx ends, then stops every adoption.
func (a *adopter) run(ctx context.Context) {
	defer a.stopAll()
	t := time.NewTicker(a.every)
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
func (a *adopter) Adopting() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]string, 0, len(a.adopting))
	for node := range a.adopting {
		out = append(out, node)
	}
	return out
}

func (a *adopter) round(ctx context.Context) {
	self := a.n.cfg.Node
	// (The lease keeps this node among the members, also after a Redis
	// restart: see Lease.Advertise.)
	members, err := a.router.Members(ctx)
	if err != nil {
		return // Redis down: the next round tries again
	}
	for node, replyTo := range members {
		if node == self {
			continue
		}
		live, err := a.router.Live(ctx, node)
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
			_ = a.router.Unadopt(ctx, node, self)
		case live:
			// Ours from an adoption whose consumer failed? Let it go.
			_ = a.router.Unadopt(ctx, node, self)
		case ad != nil && time.Since(ad.since) > a.keep:
			a.log.Info("adoption over: no request of the node can still be waiting",
				slog.String("adopted", node), slog.Duration("after", time.Since(ad.since)))
			a.stop(node)
			_ = a.router.Forget(ctx, node)
			_ = a.router.Unadopt(ctx, node, self)
		default:
			// Take it, or keep it: the key lives three rounds, so a
			// missed refresh does not hand it to another node.
			ok, err := a.router.Adopt(ctx, node, self, 3*a.every)
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

func (a *adopter) start(ctx context.Context, node, replyTo string) {
	sctx, cancel := context.WithCancel(ctx)
	ad := &adoption{replyTo: replyTo, since: time.Now(), cancel: cancel, done: make(chan struct{})}
	a.mu.Lock()
	a.adopting[node] = ad
	a.mu.Unlock()
	a.log.Warn("node is gone; consuming its reply address", slog.String("adopted", node), slog.String("reply_to", replyTo))
	go func() {
		defer close(ad.done)
		err := a.n.broker.Subscribe(sctx, replyTo, a.handler, brokers.AsInbox(),
			brokers.WithConcurrency(a.n.cfg.Broker.ReplyConcurrency))
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

func (a *adopter) stop(node string) {
	a.mu.Lock()
	ad := a.adopting[node]
	delete(a.adopting, node)
	a.mu.Unlock()
	if ad != nil {
		ad.cancel()
		<-ad.done
	}
}

func (a *adopter) stopAll() {
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
		_ = a.router.Unadopt(ctx, node, a.n.cfg.Node)
	}
}
