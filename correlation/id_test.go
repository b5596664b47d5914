package correlation_test

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
)

func TestNewID(t *testing.T) {
	const n = 100_000
	before := time.Now().Add(-time.Millisecond)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = correlation.NewID()
	}
	after := time.Now().Add(time.Millisecond)

	seen := make(map[string]struct{}, n)
	var prev uuid.UUID
	for i, s := range ids {
		if _, dup := seen[s]; dup {
			t.Fatalf("id %d %s was generated before", i, s)
		}
		seen[s] = struct{}{}

		// The gateway's own ids must pass the envelope's validation
		// unchanged, or replies could not be matched to them.
		if v, err := envelope.ValidateID(s); err != nil || v != s {
			t.Fatalf("ValidateID(%q) = %q, %v; want it unchanged", s, v, err)
		}
		u, err := uuid.Parse(s)
		if err != nil {
			t.Fatalf("id %d %q: %v", i, s, err)
		}
		if u.Version() != 7 || u.Variant() != uuid.RFC4122 {
			t.Fatalf("id %s: version %d variant %v, want 7 RFC4122", s, u.Version(), u.Variant())
		}
		// Under a burst of more than ~4 000 ids per millisecond the 12-bit
		// sub-millisecond counter carries into the timestamp, which may
		// then run a little ahead of the clock.
		ts := time.UnixMilli(unixMilli(u))
		if ts.Before(before.Truncate(time.Millisecond)) || ts.After(after.Add(time.Second)) {
			t.Fatalf("id %s: timestamp %v outside [%v, %v]", s, ts, before, after)
		}
		if i > 0 {
			// Time-ordered: ids made in sequence sort in that sequence,
			// and their millisecond timestamps never go back.
			if ids[i-1] >= s {
				t.Fatalf("id %d %s does not sort after id %d %s", i, s, i-1, ids[i-1])
			}
			if unixMilli(u) < unixMilli(prev) {
				t.Fatalf("timestamp of id %d %s is before that of %s", i, s, ids[i-1])
			}
		}
		prev = u
	}
}

// unixMilli decodes the 48-bit big-endian millisecond timestamp of a UUIDv7.
func unixMilli(u uuid.UUID) int64 {
	var ms int64
	for _, b := range u[:6] {
		ms = ms<<8 | int64(b)
	}
	return ms
}
