package gateway

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"slices"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

var (
	// ErrKeyRequired: the route requires an Idempotency-Key and none came (400).
	ErrKeyRequired = errors.New("gateway: idempotency key required")
	// ErrKeyMismatch: the key was used before with a different payload (422).
	ErrKeyMismatch = errors.New("gateway: idempotency key reused with a different payload")
	// ErrKeyConflict: the key is bound, but its request's outcome is gone
	// (expired or evicted from the result store) (409).
	ErrKeyConflict = errors.New("gateway: idempotency key bound to a request whose result is gone")
)

// IdempotencyStore binds Idempotency-Keys to the first request that used
// them (draft-ietf-httpapi-idempotency-key-header). Keys are scoped (the
// gateway scopes them by route and principal: see keyScope) and expire
// after the store's TTL.
// correlation.MemoryIdempotency implements it; the Redis store does it with
// SET NX.
type IdempotencyStore interface {
	// Reserve binds key within scope to rec unless it is bound: it returns
	// the bound record and whether rec was stored.
	Reserve(ctx context.Context, scope, key string, rec correlation.IdempotencyRecord) (correlation.IdempotencyRecord, bool, error)
	// Release unbinds key (its request could not be published).
	Release(ctx context.Context, scope, key string) error
}

// fingerprint identifies a request's payload: method, path, query, content
// type, the forwarded headers (they can change the reply) and body. The
// same key with another fingerprint is ErrKeyMismatch. Every part but the
// last is length-prefixed, and the headers go in the order of their names,
// so that two different payloads never hash the same input.
func fingerprint(m envelope.Request) string {
	h := sha256.New()
	for _, s := range []string{m.Method, m.Path, m.Query, m.ContentType} {
		writeField(h, s)
	}
	names := slices.Sorted(maps.Keys(m.Header))
	writeLen(h, len(names))
	for _, k := range names {
		writeField(h, k)
		writeField(h, m.Header[k])
	}
	_, _ = h.Write(m.Body)
	return hex.EncodeToString(h.Sum(nil))
}

// keyScope is the scope of an Idempotency-Key: the route and the
// principal, so that nobody attaches to another caller's request. It is
// the hex SHA-256 of both, length-prefixed: any route name and principal
// (whatever characters they hold) give a scope of one fixed form, which
// the stores can join to the key with a delimiter ("{scope}:{key}")
// without two pairs colliding.
func keyScope(route, principal string) string {
	h := sha256.New()
	writeField(h, route)
	writeField(h, principal)
	return hex.EncodeToString(h.Sum(nil))
}

func writeField(w io.Writer, s string) {
	writeLen(w, len(s))
	_, _ = io.WriteString(w, s)
}

func writeLen(w io.Writer, n int) {
	_, _ = w.Write(binary.AppendUvarint(nil, uint64(n)))
}

// reserve binds the request's key to id. It returns the record of the first
// request when the key was bound already.
func (g *Gateway) reserve(ctx context.Context, req *Request, id string) (correlation.IdempotencyRecord, bool, error) {
	fp := fingerprint(req.Message)
	rec, created, err := g.idem.Reserve(ctx, keyScope(req.Route.Name, req.Principal), req.Message.IdempotencyKey,
		correlation.IdempotencyRecord{ID: id, Fingerprint: fp})
	if err != nil {
		return rec, false, storeError(fmt.Errorf("idempotency: %w", err))
	}
	if !created && rec.Fingerprint != fp {
		return rec, false, ErrKeyMismatch
	}
	return rec, created, nil
}

// release undoes reserve when nothing was published.
func (g *Gateway) release(ctx context.Context, req *Request, id string) {
	ctx = context.WithoutCancel(ctx)
	_ = g.idem.Release(ctx, keyScope(req.Route.Name, req.Principal), req.Message.IdempotencyKey)
	_ = g.store.Delete(ctx, id)
}

// attach answers a request whose key is bound to the request out.ID: it
// waits for that request's result as the route and preferences allow, and
// answers as that request would: the stored reply, 202 with the same
// Location, or the route's timeout. The key's scope holds the principal,
// so out.ID is principal's own request; the read checks it all the same.
func (g *Gateway) attach(ctx context.Context, r *Route, principal string, out Outcome, wait time.Duration, async bool) (Outcome, error) {
	if async {
		out.Accepted = true
		return out, nil
	}
	res, err := g.awaitResult(ctx, out.ID, principal, wait)
	switch {
	case errors.Is(err, ErrNotFound):
		return out, ErrKeyConflict
	case errors.Is(err, errWaitOver), errors.Is(err, ErrShuttingDown):
		if !r.Pollable() {
			if errors.Is(err, errWaitOver) {
				return out, ErrTimeout
			}
			return out, ErrShuttingDown
		}
		out.Accepted = true
		return out, nil
	case err != nil:
		return out, err
	}
	switch res.State {
	case correlation.StateDone:
		out.Reply = res.Reply
		return out, nil
	case correlation.StateCancelled:
		return out, ErrCancelled
	}
	return out, fmt.Errorf("gateway: unexpected state %v of %s", res.State, out.ID)
}

// completed stores the reply of a request that has an idempotency key, so
// that retries replay it, and wakes the retries attached to it.
func (g *Gateway) completed(ctx context.Context, rep envelope.Reply) {
	err := g.store.Complete(context.WithoutCancel(ctx), rep)
	if err != nil && !errors.Is(err, correlation.ErrCompleted) && !errors.Is(err, correlation.ErrCancelled) {
		g.log.WarnContext(ctx, "storing the reply of an idempotent request", slog.String("correlation_id", rep.CorrelationID), slog.Any("error", err))
	}
	g.hub.notify(rep.CorrelationID)
}
