package floor

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"sync"

	"github.com/google/uuid"
)

// reply is what a request's waiter receives.
type reply struct {
	contentType string
	body        []byte
}

// requester publishes requests and hands the replies it consumes to
// waiters; close stops its reply consumer and returns once it has stopped.
type requester interface {
	send(ctx context.Context, id, contentType string, body []byte) error
	close() error
}

// waiters is the map of channels: one buffered channel per request in
// flight, under its correlation id.
type waiters struct {
	mu sync.Mutex
	m  map[string]chan reply
}

func newWaiters() *waiters { return &waiters{m: make(map[string]chan reply)} }

func (w *waiters) add(id string) chan reply {
	ch := make(chan reply, 1)
	w.mu.Lock()
	w.m[id] = ch
	w.mu.Unlock()
	return ch
}

func (w *waiters) remove(id string) {
	w.mu.Lock()
	delete(w.m, id)
	w.mu.Unlock()
}

// deliver hands r to the request waiting for id, if one is, and tells
// whether one was; a duplicate reply is dropped.
func (w *waiters) deliver(id string, r reply) bool {
	w.mu.Lock()
	ch, ok := w.m[id]
	w.mu.Unlock()
	if ok {
		select {
		case ch <- r:
		default:
		}
	}
	return ok
}

// Gateway runs the naive gateway until ctx ends: each POST, on any path,
// is published with a new correlation id and answered 200 with the reply's
// body, or 504 when no reply came within cfg.Timeout.
func Gateway(ctx context.Context, cfg GatewayConfig) error {
	cfg.setDefaults()
	if err := cfg.Validate(); err != nil {
		return err
	}
	log := cfg.Logger.With("broker", cfg.Kind)
	w := newWaiters()
	var (
		req requester
		err error
	)
	switch cfg.Kind {
	case Kafka:
		req, err = newKafkaRequester(ctx, cfg, w)
	case RabbitMQ:
		req, err = newRabbitRequester(cfg, w)
	}
	if err != nil {
		return err
	}
	h := &gatewayHandler{req: req, w: w, cfg: cfg, log: log}
	err = serve(ctx, cfg.Addr, h, cfg.Listening)
	return errors.Join(err, req.close())
}

type gatewayHandler struct {
	req requester
	w   *waiters
	cfg GatewayConfig
	log *slog.Logger
}

func (g *gatewayHandler) ServeHTTP(rw http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(rw, "POST only", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(rw, "reading the body: "+err.Error(), http.StatusBadRequest)
		return
	}
	id := uuid.NewString()
	ch := g.w.add(id)
	defer g.w.remove(id)
	ctx, cancel := context.WithTimeout(r.Context(), g.cfg.Timeout)
	defer cancel()
	if err := g.req.send(ctx, id, r.Header.Get("Content-Type"), body); err != nil {
		g.log.Warn("floor: publish failed", slog.String("correlation_id", id), slog.Any("error", err))
		http.Error(rw, "publish: "+err.Error(), http.StatusBadGateway)
		return
	}
	select {
	case rep := <-ch:
		if rep.contentType != "" {
			rw.Header().Set("Content-Type", rep.contentType)
		}
		_, _ = rw.Write(rep.body)
	case <-ctx.Done():
		http.Error(rw, fmt.Sprintf("no reply within %v", g.cfg.Timeout), http.StatusGatewayTimeout)
	}
}
