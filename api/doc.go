// Package api is syncgate's HTTP surface: a chi router with one handler per
// configured route, the poll endpoint GET /v1/requests/{id}, health probes,
// and the single place where errors become RFC 9457 problem+json responses.
// A service's reply is written as the response (writeReply): repeated
// headers as repeated lines, never a header the gateway owns, never
// sniffed.
package api
