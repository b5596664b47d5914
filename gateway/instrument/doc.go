// Package instrument wraps the gateway's ports with Prometheus metrics, as
// decorators, so that the use case itself counts nothing: Publisher times
// every publish, Gateway observes each request's outcome (broker round trip,
// 202s, idempotent replays, polls, cancels), and ReplyHandler counts replies
// by outcome. Every constructor registers its metrics on the registry it is
// given, never on the global default.
package instrument
