// Package api is syncgate's HTTP surface: a chi router with one handler per
// configured route, the poll endpoint GET /v1/requests/{id}, health probes,
// and the single place where errors become RFC 9457 problem+json responses.
package api
