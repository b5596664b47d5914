package outbox

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
)

// Bolt is a Store in a local bbolt file, for a node without PostgreSQL.
// Its leases live in memory: one process owns the file (bbolt locks it),
// so a restart frees them all.
type Bolt struct {
	db  *bolt.DB
	max int

	mu     sync.Mutex
	leased map[string]time.Time // id → lease end
	count  int                  // items in the file, kept here: bbolt's own count walks every page
}

var (
	bucketItems = []byte("items") // seq (big endian) → item JSON
	bucketIDs   = []byte("ids")   // id → seq
)

// OpenBolt opens (creating) the outbox file at path, holding at most max
// items (0: 100 000). Another process holding the file makes it fail
// within a second.
func OpenBolt(path string, max int) (*Bolt, error) {
	if max <= 0 {
		max = 100_000
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second})
	if err != nil {
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	count := 0
	if err := db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketItems, bucketIDs} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		count = tx.Bucket(bucketItems).Stats().KeyN // once, at open
		return nil
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("outbox: open %s: %w", path, err)
	}
	return &Bolt{db: db, max: max, leased: make(map[string]time.Time), count: count}, nil
}

type boltItem struct {
	ID       string            `json:"id"`
	Dest     string            `json:"dest"`
	Key      string            `json:"key,omitempty"`
	Headers  map[string]string `json:"headers,omitempty"`
	Body     []byte            `json:"body,omitempty"`
	Queued   time.Time         `json:"queued"`
	Deadline time.Time         `json:"deadline"`
}

// Put queues it, durably (the file is synced) before it returns.
func (b *Bolt) Put(_ context.Context, it Item) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	err := b.db.Update(func(tx *bolt.Tx) error {
		items, ids := tx.Bucket(bucketItems), tx.Bucket(bucketIDs)
		if ids.Get([]byte(it.ID)) != nil {
			return ErrExists
		}
		if b.count >= b.max {
			return ErrFull
		}
		seq, err := items.NextSequence()
		if err != nil {
			return err
		}
		v, err := json.Marshal(boltItem{ID: it.ID, Dest: it.Dest, Key: it.Message.Key, Headers: it.Message.Headers,
			Body: it.Message.Body, Queued: it.Queued, Deadline: it.Deadline})
		if err != nil {
			return err
		}
		k := binary.BigEndian.AppendUint64(nil, seq)
		if err := items.Put(k, v); err != nil {
			return err
		}
		return ids.Put([]byte(it.ID), k)
	})
	if err == nil {
		b.count++
	}
	return err
}

// Claim leases up to n of the oldest items not leased.
func (b *Bolt) Claim(_ context.Context, n int, lease time.Duration) ([]Item, error) {
	now := time.Now()
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []Item
	err := b.db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketItems).Cursor()
		for k, v := c.First(); k != nil && len(out) < n; k, v = c.Next() {
			var bi boltItem
			if err := json.Unmarshal(v, &bi); err != nil {
				return err
			}
			if until, ok := b.leased[bi.ID]; ok && now.Before(until) {
				continue
			}
			out = append(out, Item{ID: bi.ID, Dest: bi.Dest, Queued: bi.Queued, Deadline: bi.Deadline,
				Seq:     int64(binary.BigEndian.Uint64(k)),
				Message: messageOf(bi.Key, bi.Headers, bi.Body)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("outbox: claim: %w", err)
	}
	for _, it := range out {
		b.leased[it.ID] = now.Add(lease)
	}
	return out, nil
}

// Done removes the item of id (a no-op when there is none).
func (b *Bolt) Done(_ context.Context, id string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.leased, id)
	removed := false
	err := b.db.Update(func(tx *bolt.Tx) error {
		ids := tx.Bucket(bucketIDs)
		k := ids.Get([]byte(id))
		if k == nil {
			return nil
		}
		if err := tx.Bucket(bucketItems).Delete(k); err != nil {
			return err
		}
		removed = true
		return ids.Delete([]byte(id))
	})
	if err == nil && removed {
		b.count--
	}
	return err
}

// Has reports whether an item of id waits.
func (b *Bolt) Has(_ context.Context, id string) (bool, error) {
	var ok bool
	err := b.db.View(func(tx *bolt.Tx) error {
		ok = tx.Bucket(bucketIDs).Get([]byte(id)) != nil
		return nil
	})
	return ok, err
}

// Stats returns the depth and the oldest item's queue time.
func (b *Bolt) Stats(context.Context) (int, time.Time, error) {
	b.mu.Lock()
	depth := b.count
	b.mu.Unlock()
	var oldest time.Time
	err := b.db.View(func(tx *bolt.Tx) error {
		if _, v := tx.Bucket(bucketItems).Cursor().First(); v != nil {
			var bi boltItem
			if err := json.Unmarshal(v, &bi); err != nil {
				return err
			}
			oldest = bi.Queued
		}
		return nil
	})
	return depth, oldest, err
}

// Close closes the file.
func (b *Bolt) Close() error { return b.db.Close() }

// Release frees the leases of ids.
func (b *Bolt) Release(_ context.Context, ids []string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, id := range ids {
		delete(b.leased, id)
	}
	return nil
}
