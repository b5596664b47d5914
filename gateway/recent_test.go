package gateway

import (
	"testing"

	"github.com/syncgate/syncgate/correlation"
)

// The memory holds at most its size, whatever was added.
func TestRecentIsBounded(t *testing.T) {
	const size = 1024
	r := newRecent(size)
	ids := make([]string, 10*size)
	for i := range ids {
		ids[i] = correlation.NewID()
		r.add(ids[i])
	}
	n := 0
	for i := range r.shards {
		n += len(r.shards[i].cur) + len(r.shards[i].prev)
	}
	if n > size {
		t.Errorf("holds %d ids, more than its size %d", n, size)
	}
	if !r.has(ids[len(ids)-1]) {
		t.Error("the last id added is forgotten")
	}
	if r.has(ids[0]) {
		t.Error("the first of 10×size ids is still remembered")
	}
	if r.has("not-a-uuid") {
		t.Error("has(garbage) = true")
	}
}

// BenchmarkRecent measures what the reply path pays for the memory of
// answered ids: one add (a delivered reply) and one has (the next reply's
// check), from all cores at once.
//
//	go test -run '^$' -bench Recent -cpu 1,2 ./gateway/
func BenchmarkRecent(b *testing.B) {
	r := newRecent(DefaultRecentReplies)
	ids := make([]string, 1<<16)
	for i := range ids {
		ids[i] = correlation.NewID()
	}
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			id := ids[i&(len(ids)-1)]
			r.add(id)
			_ = r.has(id)
			i += 7
		}
	})
}
