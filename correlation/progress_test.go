package correlation

import (
	"context"
	"errors"
	"testing"
	"time"
)

// Progress messages count against MaxBytes while kept, stop counting when
// dropped (the oldest past MaxProgressKept, or with the record), and are
// refused once the store is over MaxBytes.
func TestMemoryStoreProgressBytes(t *testing.T) {
	ctx := context.Background()
	s := NewMemoryStore(MemoryStoreConfig{MaxBytes: 64 << 10})
	id := NewID()
	if err := s.Pending(ctx, id, "", time.Minute); err != nil {
		t.Fatal(err)
	}
	base := s.Bytes()
	body := make([]byte, 1000)
	for range MaxProgressKept {
		if _, err := s.Progress(ctx, id, Progress{ContentType: "t", Body: body}); err != nil {
			t.Fatal(err)
		}
	}
	kept := s.Bytes() - base
	if want := int64(MaxProgressKept) * progressSize(Progress{ContentType: "t", Body: body}); kept != want {
		t.Fatalf("%d progress messages count %d bytes, want %d", MaxProgressKept, kept, want)
	}
	if _, err := s.Progress(ctx, id, Progress{ContentType: "t", Body: body}); err != nil {
		t.Fatal(err)
	}
	if got := s.Bytes() - base; got != kept {
		t.Errorf("one more than kept: %d bytes, want %d (the oldest dropped)", got, kept)
	}
	big := make([]byte, 64<<10)
	if _, err := s.Progress(ctx, id, Progress{Body: big}); !errors.Is(err, ErrFull) {
		t.Errorf("a progress message past MaxBytes: %v, want ErrFull", err)
	}
	if err := s.Delete(ctx, id); err != nil || s.Bytes() != 0 {
		t.Errorf("after Delete: %d bytes, %v", s.Bytes(), err)
	}
}
