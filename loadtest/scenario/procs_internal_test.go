package scenario

import (
	"bytes"
	"encoding/json"
	"testing"
)

// Every request of a multi-process scenario is 256 bytes of JSON of its
// own: a reply matched to another request cannot pass the echo check.
func TestProcsBody(t *testing.T) {
	for _, n := range []uint64{1, 2, 1 << 40} {
		b := procsBody(n)
		if len(b) != 256 || !json.Valid(b) {
			t.Errorf("body %d: %d bytes, valid JSON %v: %s", n, len(b), json.Valid(b), b)
		}
	}
	if bytes.Equal(procsBody(1), procsBody(2)) {
		t.Error("two requests with the same body")
	}
}
