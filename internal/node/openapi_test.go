package node_test

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/pb33f/libopenapi"
	validator "github.com/pb33f/libopenapi-validator"

	"github.com/syncgate/syncgate/internal/testenv"
)

// The node serves its OpenAPI 3.1 document at /openapi.json; it is a
// valid document, and the node's real answers on the surface it
// describes (poll pending, done, long poll, unknown, bad wait, cancelled;
// cancel, cancel unknown, cancel completed; health and readiness) validate
// against it with libopenapi-validator.
func TestOpenAPIDescribesTheNode(t *testing.T) {
	n := start(t, testConfig())
	resp, spec := send(t, "GET", n.base+"/openapi.json", nil, nil)
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("/openapi.json: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	doc, err := libopenapi.NewDocument(spec)
	if err != nil {
		t.Fatal(err)
	}
	v, errs := validator.NewValidator(doc)
	if len(errs) > 0 {
		t.Fatalf("validator: %v", errs)
	}
	if ok, verrs := v.ValidateDocument(); !ok {
		for _, e := range verrs {
			t.Errorf("document: %s: %s", e.Message, e.Reason)
		}
		t.FailNow()
	}
	check := func(method, path string, want int) *http.Response {
		t.Helper()
		req, _ := http.NewRequestWithContext(t.Context(), method, n.base+path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Fatalf("%s %s: %d %s, want %d", method, path, resp.StatusCode, body, want)
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		// The validator matches the request's path against the
		// document's, so it gets the path without the node's address.
		vreq, _ := http.NewRequest(method, "http://syncgate"+path, nil)
		validate := v.ValidateHttpRequestResponse
		if want == http.StatusBadRequest {
			// A request the document refuses: its answer must still be
			// one the document describes.
			validate = v.ValidateHttpResponse
		}
		if ok, verrs := validate(vreq, resp); !ok {
			for _, e := range verrs {
				t.Errorf("%s %s (%d): %s: %s", method, path, want, e.Message, e.Reason)
			}
		}
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return resp
	}

	// A request that stays pending (the slow demo route answers 202
	// after its 50 ms wait), polled, long-polled, cancelled, cancelled
	// again, polled after.
	r, _ := send(t, "POST", n.base+"/t/auto?ms=3000", []byte("x"), nil)
	if r.StatusCode != http.StatusAccepted {
		t.Fatalf("POST /t/auto: %d", r.StatusCode)
	}
	loc := r.Header.Get("Location")
	check("GET", loc, http.StatusAccepted)
	check("GET", loc+"?wait=100ms", http.StatusAccepted)
	check("GET", loc+"?wait=soon", http.StatusBadRequest)
	check("DELETE", loc, http.StatusNoContent)
	check("DELETE", loc, http.StatusNoContent)
	check("GET", loc, http.StatusGone)

	// A request whose reply is in: polled (the stored reply), and too late
	// to cancel.
	r, _ = send(t, "PUT", n.base+"/t/async/1", []byte(`{"a":1}`), map[string]string{"Content-Type": "application/json"})
	done := r.Header.Get("Location")
	testenv.Eventually(t, 5*time.Second, "the async request done", func() bool {
		resp, _ := send(t, "GET", n.base+done, nil, nil)
		return resp.StatusCode == http.StatusOK
	})
	if got := check("GET", done, http.StatusOK); !strings.Contains(got.Header.Get("Content-Type"), "json") {
		t.Errorf("stored reply content type %q", got.Header.Get("Content-Type"))
	}
	check("DELETE", done, http.StatusConflict)

	const unknown = "/v1/requests/01a245e2-c4d7-703b-81a0-f95cf2d2c17c"
	check("GET", unknown, http.StatusNotFound)
	check("DELETE", unknown, http.StatusNotFound)
	check("GET", "/healthz", http.StatusOK)
	check("GET", "/readyz", http.StatusOK)
	check("GET", "/openapi.json", http.StatusOK)
}
