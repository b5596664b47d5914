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
//
// req.Principal is the caller the gateway authenticated ("" when
// anonymous): the gateway alone sets it, from the credential, never from
// what the caller sent (a forwarded HTTP header named Principal is in
// req.Header["principal"], a different thing).
//
// # A reply the broker cannot take yet
//
// When publishing the reply fails with brokers.ErrUnavailable (the
// service's publishing connection is down: a broker restart, a dropped
// connection) or an attempt times out, the SDK retries it with a jittered
// backoff (50 ms doubling to 1 s) while it keeps the request's delivery
// unsettled, until the request's deadline (Service.ReplyRetry for a request
// without one) or until the subscription stops. Failing the delivery
// instead would have the broker redeliver it at once: a blip of a second
// would spend a RabbitMQ quorum queue's whole delivery limit in
// milliseconds and dead-letter every request in flight, although nothing
// was wrong with them. A reply still unpublishable at the deadline is
// dropped and its request acknowledged (nobody waits for it any more), with
// a warning naming the correlation id. When the subscription stops during
// the retries, the delivery fails and the broker redelivers it to another
// consumer. A reply address the broker does not know
// (brokers.ErrUnroutable: a Kafka reply topic lost in an empty broker
// restart, until its gateway recreates it; a RabbitMQ reply queue expired
// with its node) is retried the same way for at most UnroutableReplyRetry
// (5 s), then the reply is dropped with a warning and the request
// acknowledged: handling it again would repeat its side effects and could
// not make the address exist. Other publish errors (brokers.ErrClosed)
// fail the delivery at once, as handler errors do. A retried
// publish whose first confirm was lost with the connection may reach the
// gateway twice; the gateway keeps the first.
//
// # A request the broker gives up on
//
// Serve passes brokers.WithDeadLetter(s.DeadLettered) to Subscribe (a
// callback among its opts runs after it): when the backend gives up on a
// request (its delivery failed on the last attempt the backend allows:
// RabbitMQ's max_deliveries, Kafka's dead-letter topic), DeadLettered
// publishes envelope.FailureReply with kind envelope.FailureDeadLettered (a
// 502 problem) to the request's reply-to, retried like a reply, so the
// caller and a later poll learn at once that no reply will come. Requests
// without a valid id or reply-to, or past their deadline, are only logged.
package responder
