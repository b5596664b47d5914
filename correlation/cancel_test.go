package correlation_test

import (
	"errors"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

func TestMemoryStoreCancel(t *testing.T) {
	ctx := t.Context()
	s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
	id, done := correlation.NewID(), correlation.NewID()
	_ = s.Pending(ctx, id, "", time.Minute)
	_ = s.Pending(ctx, done, "", time.Minute)
	_ = s.Complete(ctx, envelope.Reply{CorrelationID: done})
	if err := s.Cancel(ctx, id, ""); err != nil {
		t.Fatal(err)
	}
	if err := s.Cancel(ctx, id, ""); err != nil {
		t.Errorf("second Cancel: %v", err)
	}
	if res, _ := s.Get(ctx, id); res.State != correlation.StateCancelled || res.State.String() != "cancelled" {
		t.Errorf("state %v", res.State)
	}
	if err := s.Complete(ctx, envelope.Reply{CorrelationID: id}); !errors.Is(err, correlation.ErrCancelled) {
		t.Errorf("Complete after Cancel: %v", err)
	}
	if err := s.Cancel(ctx, done, ""); !errors.Is(err, correlation.ErrCompleted) {
		t.Errorf("Cancel after Complete: %v", err)
	}
	if err := s.Cancel(ctx, correlation.NewID(), ""); !errors.Is(err, correlation.ErrNotFound) {
		t.Errorf("Cancel unknown: %v", err)
	}
}
