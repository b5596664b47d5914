package correlation

import (
	"runtime"
	"testing"

	"github.com/syncgate/syncgate/brokers/envelope"
)

// TestRecordOverhead measures what records really cost on the heap and
// checks that recordSize counts them within a factor of the truth: never
// far below it (or MaxBytes would not bound the heap), and not so far above
// that the budget is wasted.
func TestRecordOverhead(t *testing.T) {
	const n = 20_000
	ctx := t.Context()
	for _, tc := range []struct {
		name  string
		reply func(id string) *envelope.Reply
	}{
		{"pending", func(string) *envelope.Reply { return nil }},
		{"done, small reply", func(id string) *envelope.Reply {
			return &envelope.Reply{CorrelationID: id, ContentType: "application/json", Body: []byte(`{"ok":true,"order":42}`),
				Header: map[string]string{"location": "/orders/42", "etag": `"abc"`}}
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ids := make([]string, n)
			for i := range ids {
				ids[i] = NewID()
			}
			before := heapAlloc()
			s := NewMemoryStore(MemoryStoreConfig{MaxEntries: n})
			for _, id := range ids {
				if err := s.Pending(ctx, id, "", 1<<40); err != nil {
					t.Fatal(err)
				}
				if rep := tc.reply(id); rep != nil {
					rep.CorrelationID = string([]byte(id)) // a decoded reply has its own copy
					if err := s.Complete(ctx, *rep); err != nil {
						t.Fatal(err)
					}
				}
			}
			used := float64(heapAlloc()-before) / n
			counted := float64(s.Bytes()) / n
			t.Logf("%s: %.0f heap bytes per record, %.0f counted", tc.name, used, counted)
			if counted < 0.8*used || counted > 2*used {
				t.Errorf("recordSize counts %.0f bytes per record, the heap holds %.0f", counted, used)
			}
			runtime.KeepAlive(s)
		})
	}
}

func heapAlloc() int64 {
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}
