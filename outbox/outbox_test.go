package outbox_test

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/outbox"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// stores opens each Store kind with room for max items: a fresh one per
// call, and open opens the same one again (a restart).
type kind struct {
	name string
	open func(t *testing.T, max int) (fresh func() outbox.Store, again func() outbox.Store)
}

var kinds = []kind{
	{"bolt", func(t *testing.T, max int) (func() outbox.Store, func() outbox.Store) {
		path := filepath.Join(t.TempDir(), "outbox.db")
		open := func() outbox.Store {
			s, err := outbox.OpenBolt(path, max)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return open, open
	}},
	{"postgres", func(t *testing.T, max int) (func() outbox.Store, func() outbox.Store) {
		url := testenv.RequirePostgres(t)
		table := testenv.PostgresTable(t, url, "outbox_test")
		open := func() outbox.Store {
			s, err := outbox.OpenPG(t.Context(), url, table, max)
			if err != nil {
				t.Fatal(err)
			}
			return s
		}
		return open, open
	}},
}

var base = time.Now().UTC().Truncate(time.Millisecond)

func item(i int) outbox.Item {
	now := base
	return outbox.Item{ID: fmt.Sprintf("id-%d", i), Dest: "orders",
		Message: brokers.Message{Key: fmt.Sprintf("k%d", i), Headers: map[string]string{"correlation-id": fmt.Sprintf("id-%d", i)},
			Body: []byte{byte(i), 0, 0xff}},
		Queued: now.Add(time.Duration(i) * time.Millisecond), Deadline: now.Add(time.Minute)}
}

// Items come out in the order they went in, byte-exact, leased: claimed
// once until the lease runs out or Done removes them; an id is queued
// once; past max, Put refuses; what was put survives a restart.
func TestStores(t *testing.T) {
	for _, k := range kinds {
		t.Run(k.name, func(t *testing.T) {
			ctx := t.Context()
			open, again := k.open(t, 3)
			s := open()
			for i := range 3 {
				if err := s.Put(ctx, item(i)); err != nil {
					t.Fatal(err)
				}
			}
			if err := s.Put(ctx, item(0)); !errors.Is(err, outbox.ErrExists) {
				t.Errorf("a second put of id-0: %v, want ErrExists", err)
			}
			if err := s.Put(ctx, item(3)); !errors.Is(err, outbox.ErrFull) {
				t.Errorf("a fourth put with room for 3: %v, want ErrFull", err)
			}
			depth, oldest, err := s.Stats(ctx)
			if err != nil || depth != 3 || !oldest.Equal(item(0).Queued) {
				t.Errorf("Stats: %d %v %v", depth, oldest, err)
			}
			got, err := s.Claim(ctx, 2, time.Minute)
			if err != nil || len(got) != 2 || got[0].ID != "id-0" || got[1].ID != "id-1" || got[0].Seq >= got[1].Seq {
				t.Fatalf("Claim(2): %+v, %v", got, err)
			}
			want := item(1)
			if g := got[1]; g.Dest != want.Dest || g.Message.Key != want.Message.Key || string(g.Message.Body) != string(want.Message.Body) ||
				g.Message.Headers["correlation-id"] != "id-1" || !g.Queued.Equal(want.Queued) || !g.Deadline.Equal(want.Deadline) {
				t.Errorf("claimed %+v, want %+v", g, want)
			}
			if got, _ := s.Claim(ctx, 10, 100*time.Millisecond); len(got) != 1 || got[0].ID != "id-2" {
				t.Fatalf("Claim with two leased: %+v, want id-2 alone", got)
			}
			if has, err := s.Has(ctx, "id-0"); err != nil || !has {
				t.Errorf("Has(id-0) while queued: %v, %v", has, err)
			}
			if err := s.Done(ctx, "id-0"); err != nil {
				t.Fatal(err)
			}
			if has, err := s.Has(ctx, "id-0"); err != nil || has {
				t.Errorf("Has(id-0) once done: %v, %v", has, err)
			}
			// id-2's lease (100 ms) runs out; id-1's (a minute) does not.
			testenv.Eventually(t, 5*time.Second, "id-2's lease ran out", func() bool {
				got, err := s.Claim(ctx, 10, time.Minute)
				return err == nil && len(got) == 1 && got[0].ID == "id-2"
			})
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			s = again()
			defer s.Close()
			if depth, _, _ := s.Stats(ctx); depth != 2 {
				t.Errorf("after a restart: %d items, want 2", depth)
			}
		})
	}
}

// Several relays claiming from one PostgreSQL outbox at once never take
// the same item.
func TestPGClaimsAreExclusive(t *testing.T) {
	open, _ := kinds[1].open(t, 1000)
	ctx := t.Context()
	stores := []outbox.Store{open(), open(), open()}
	for _, s := range stores {
		defer s.Close()
	}
	for i := range 300 {
		if err := stores[0].Put(ctx, item(i)); err != nil {
			t.Fatal(err)
		}
	}
	var mu sync.Mutex
	seen := map[string]int{}
	var wg sync.WaitGroup
	for _, s := range stores {
		wg.Go(func() {
			for {
				got, err := s.Claim(ctx, 7, time.Minute)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, it := range got {
					seen[it.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 300 {
		t.Errorf("%d items claimed, want 300", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("%s claimed %d times", id, n)
		}
	}
}
