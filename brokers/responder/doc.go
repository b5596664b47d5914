// Package responder is the service-side SDK: a service answers syncgate
// requests with one function,
//
//	func(ctx context.Context, req responder.Request) (responder.Reply, error)
//
// served from a destination of any backend. The SDK decodes the envelope,
// drops work whose deadline has passed, runs the function with that deadline
// on its context, and publishes the reply to the request's reply-to address
// with the same correlation id. A returned error (or a panic) becomes a 500
// problem reply; the error text is logged, not sent.
package responder
