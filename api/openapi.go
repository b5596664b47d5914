package api

import (
	_ "embed"
	"net/http"
	"strconv"
)

// OpenAPIPath serves OpenAPI, the OpenAPI 3.1 document of syncgate's own
// HTTP surface: GET and DELETE /v1/requests/{id}, /healthz, /readyz and
// the problem types (its enum is Catalogue's, TestOpenAPIProblemTypes).
const OpenAPIPath = "/openapi.json"

//go:embed openapi.json
var OpenAPI []byte

func serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	h := w.Header()
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(OpenAPI)))
	h.Set("Cache-Control", "public, max-age=300")
	_, _ = w.Write(OpenAPI)
}
