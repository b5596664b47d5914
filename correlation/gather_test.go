package correlation_test

import (
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/correlation/correlationtest"
)

func TestMemoryStoreParts(t *testing.T) {
	correlationtest.Parts(t, correlation.NewMemoryStore(correlation.MemoryStoreConfig{}))
}

// A completed scatter-gather record still counts its parts against
// MaxBytes (Complete recomputes the record's size).
func TestMemoryStoreCountsPartsAfterComplete(t *testing.T) {
	ctx := t.Context()
	bytes := func(withParts bool) int64 {
		s := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
		id := correlation.NewID()
		if err := s.Pending(ctx, id, "", time.Minute); err != nil {
			t.Fatal(err)
		}
		if withParts {
			g := correlation.Gathering{Rule: "all", Parts: []correlation.Part{{Name: strings.Repeat("n", 1000), Destination: "d", ID: correlation.NewID()}}}
			if err := s.SetParts(ctx, id, g); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.Complete(ctx, envelope.Reply{CorrelationID: id, Body: []byte("x")}); err != nil {
			t.Fatal(err)
		}
		return s.Bytes()
	}
	if with, without := bytes(true), bytes(false); with-without < 1000 {
		t.Errorf("a completed record with a 1000-byte part name counts %d bytes more than one without", with-without)
	}
}
