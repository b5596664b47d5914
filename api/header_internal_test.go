package api

import (
	"net/http"
	"testing"

	"github.com/syncgate/syncgate/api/middleware"
)

// TestHeaderKeysCanonical: writeReply and answer assign these keys to the
// header map directly, skipping Header.Set's canonicalization, which is
// only right for keys that are canonical already.
func TestHeaderKeysCanonical(t *testing.T) {
	for _, k := range []string{HeaderCorrelationID, middleware.HeaderTraceParent, middleware.HeaderTraceState,
		headerNoSniff, headerContentType, headerContentLength, headerIdempotencyKey, headerPrefer,
		middleware.HeaderRequestID} {
		if c := http.CanonicalHeaderKey(k); c != k {
			t.Errorf("%q is not canonical (%q)", k, c)
		}
	}
}
