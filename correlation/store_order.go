package correlation

import (
	"math"
	"time"
)

// The order MemoryStore keeps over its records. It is intrusive (the
// position lives in the record) and does not allocate per operation once
// grown.

// expiryHeap is a binary min-heap of records by expiry, the first to expire
// at index 0; record.index is each record's position. It keeps a copy of
// every expiry next to its record pointer, so that sifting compares without
// loading the records. (container/heap would box every push and pop.)
type expiryHeap []expiryItem

type expiryItem struct {
	expires int64 // expiryKey(r.Expires): no pointer, so swaps are cheap
	r       *record
}

// expiryKey orders times like Before does, saturating where UnixNano would
// overflow (a TTL of centuries).
func expiryKey(t time.Time) int64 {
	switch {
	case t.Before(minKeyTime):
		return math.MinInt64
	case t.After(maxKeyTime):
		return math.MaxInt64
	}
	return t.UnixNano()
}

var (
	minKeyTime = time.Unix(0, math.MinInt64)
	maxKeyTime = time.Unix(0, math.MaxInt64)
)

func (h *expiryHeap) push(r *record) {
	*h = append(*h, expiryItem{expires: expiryKey(r.Expires), r: r})
	r.index = len(*h) - 1
	h.up(r.index)
}

func (h *expiryHeap) remove(r *record) {
	i, last := r.index, len(*h)-1
	if i != last {
		h.swap(i, last)
	}
	(*h)[last] = expiryItem{}
	*h = (*h)[:last]
	r.index = -1
	if i != last {
		h.fixAt(i)
	}
}

// fix restores the order after r.Expires changed.
func (h expiryHeap) fix(r *record) {
	h[r.index].expires = expiryKey(r.Expires)
	h.fixAt(r.index)
}

func (h expiryHeap) fixAt(i int) {
	if !h.down(i) {
		h.up(i)
	}
}

func (h expiryHeap) up(j int) {
	for j > 0 {
		i := (j - 1) / 2
		if h[j].expires >= h[i].expires {
			break
		}
		h.swap(i, j)
		j = i
	}
}

// down sifts the item at i0 down and reports whether it moved.
func (h expiryHeap) down(i0 int) bool {
	i, n := i0, len(h)
	for {
		j := 2*i + 1
		if j >= n {
			break
		}
		if r := j + 1; r < n && h[r].expires < h[j].expires {
			j = r
		}
		if h[j].expires >= h[i].expires {
			break
		}
		h.swap(i, j)
		i = j
	}
	return i > i0
}

func (h expiryHeap) swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].r.index = i
	h[j].r.index = j
}
