package nats

// A claim check for bodies larger than the server's max_payload (1 MB by
// default, and syncgate's body limit is 1 MiB): the body goes to a JetStream
// object store, the message carries a reference in bodyHeader, and the
// subscription fetches the body before the handler sees the message.

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"

	"github.com/google/uuid"
	natsgo "github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/syncgate/syncgate/brokers"
)

// errBodyGone marks a body reference whose object no longer exists: the
// message cannot be handled, however often it is delivered.
var errBodyGone = errors.New("nats: the message's body is gone from the body bucket (body_ttl passed?)")

// bodyStore opens object stores on first use and keeps them.
type bodyStore struct {
	c  *Client
	mu sync.Mutex
	// buckets holds the stores opened so far by bucket name: the
	// configured one, and those that references from other Clients name.
	buckets map[string]jetstream.ObjectStore
}

// tooLarge reports whether msg exceeds what the server accepts in one
// message.
func (c *Client) tooLarge(msg *natsgo.Msg) bool {
	return int64(msg.Size()-len(msg.Subject)-len(msg.Reply)) > c.nc.MaxPayload()
}

// offload moves msg's body to the body bucket and puts the reference in
// its headers. It returns the reference, for removal if the publish fails.
func (b *bodyStore) offload(ctx context.Context, msg *natsgo.Msg) (string, error) {
	body := msg.Data
	msg.Data = nil
	if b.c.tooLarge(msg) {
		return "", fmt.Errorf("%w: nats: the headers of a message to %q exceed the server's max_payload (%d bytes)",
			ErrMessageTooLarge, msg.Subject, b.c.nc.MaxPayload())
	}
	obs, err := b.open(ctx, b.c.cfg.BodyBucket, true)
	if err == nil {
		name := uuid.NewString()
		if _, err = obs.PutBytes(ctx, name, body); err == nil {
			ref := b.c.cfg.BodyBucket + "/" + name
			msg.Header[bodyHeader] = []string{ref}
			return ref, nil
		}
	}
	if ctx.Err() != nil {
		return "", fmt.Errorf("nats: publish to %q: storing its %d-byte body: %w", msg.Subject, len(body), ctx.Err())
	}
	var apiErr *jetstream.APIError
	if errors.Is(err, jetstream.ErrJetStreamNotEnabled) || errors.Is(err, jetstream.ErrJetStreamNotEnabledForAccount) || errors.As(err, &apiErr) {
		return "", fmt.Errorf("%w: nats: a %d-byte body to %q exceeds the server's max_payload (%d bytes) and body bucket %q refused it: %v",
			ErrMessageTooLarge, len(body), msg.Subject, b.c.nc.MaxPayload(), b.c.cfg.BodyBucket, err)
	}
	return "", fmt.Errorf("%w: nats: storing a %d-byte body for %q in bucket %q: %v",
		brokers.ErrUnavailable, len(body), msg.Subject, b.c.cfg.BodyBucket, err)
}

// open returns the object store of bucket, creating it (with the
// Client's BodyTTL, storage and replicas) when create is set.
func (b *bodyStore) open(ctx context.Context, bucket string, create bool) (jetstream.ObjectStore, error) {
	b.mu.Lock()
	obs := b.buckets[bucket]
	b.mu.Unlock()
	if obs != nil {
		return obs, nil
	}
	var err error
	if create {
		obs, err = b.c.js.CreateObjectStore(ctx, jetstream.ObjectStoreConfig{
			Bucket:      bucket,
			Description: "syncgate: bodies larger than max_payload",
			TTL:         b.c.cfg.BodyTTL,
			Storage:     b.c.storage(),
			Replicas:    b.c.cfg.Replicas,
		})
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) || errors.Is(err, jetstream.ErrBucketExists) {
			obs, err = b.c.js.ObjectStore(ctx, bucket) // created with other settings: use it as it is
		}
	} else {
		obs, err = b.c.js.ObjectStore(ctx, bucket)
	}
	if err != nil {
		return nil, err
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.buckets == nil {
		b.buckets = make(map[string]jetstream.ObjectStore)
	}
	b.buckets[bucket] = obs
	return obs, nil
}

// fetch returns the body that ref names.
func (b *bodyStore) fetch(ctx context.Context, ref string) ([]byte, error) {
	bucket, name, ok := strings.Cut(ref, "/")
	if !ok || bucket == "" || name == "" {
		return nil, fmt.Errorf("%w: malformed reference %q", errBodyGone, ref)
	}
	obs, err := b.open(ctx, bucket, false)
	if errors.Is(err, jetstream.ErrBucketNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, fmt.Errorf("%w: bucket %q: %v", errBodyGone, bucket, err)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: body bucket %q: %w", bucket, err)
	}
	data, err := obs.GetBytes(ctx, name)
	if errors.Is(err, jetstream.ErrObjectNotFound) {
		return nil, fmt.Errorf("%w: %s", errBodyGone, ref)
	}
	if err != nil {
		return nil, fmt.Errorf("nats: fetching body %s: %w", ref, err)
	}
	return data, nil
}

// remove deletes the object ref names; failures are logged (the bucket's
// TTL removes it anyway).
func (b *bodyStore) remove(ctx context.Context, ref string) {
	bucket, name, _ := strings.Cut(ref, "/")
	obs, err := b.open(ctx, bucket, false)
	if err == nil {
		err = obs.Delete(ctx, name)
	}
	if err != nil && !errors.Is(err, jetstream.ErrObjectNotFound) {
		b.c.log.Debug("nats: could not delete a body object; body_ttl removes it", "ref", ref, "error", err)
	}
}
