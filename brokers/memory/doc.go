// Package memory is an in-process broker: the embedded default when syncgate
// runs without Kafka or RabbitMQ, and a fast backend for tests.
//
// One *Broker is both the brokers.Publisher and the brokers.Subscriber.
// Destinations are created on first use and hold one bounded queue per
// consumer group. Every group on a destination gets every message; the
// subscriptions of one group compete for its messages. Subscriptions without
// WithGroup share the destination's default group, so two of them split the
// work like two consumers of one AMQP queue. The first group of a destination
// inherits everything published before anyone subscribed (a durable queue);
// a group created later sees messages published from then on. Groups live
// as long as the Broker: a group whose subscribers all left keeps queueing,
// and once its queue is full Publish to that destination blocks.
//
// Publish stores a deep copy of the message and returns once every group of
// the destination queued it. When a queue is full, Publish blocks until there
// is room, until its context ends (the error then wraps ctx.Err()) or until
// the Broker closes (brokers.ErrClosed). A Publish that fails that way may
// have queued the message for some groups of the destination already.
//
// Delivery is at-least-once. A handler receives its own copy of the message.
// When it returns an error, the same worker hands the message to it again
// after a backoff (Config.RetryDelay doubling up to Config.MaxRetryDelay),
// so the messages behind it on that key keep their order, up to
// Config.MaxDeliveries attempts (default 5). After the last failed attempt
// the message is given to the subscription's DeadLetter callback
// (brokers.WithDeadLetter) and dropped: a poison message does not hold its
// key forever, and the memory broker keeps no dead letters (nothing could
// read them once the process is gone). A handler that fails because its
// subscription is stopping does not spend an attempt. When a
// subscription's context ends, the messages it holds but has not acknowledged
// go back to the front of their group's queue for the remaining or next
// subscriber.
//
// WithConcurrency(n) runs n workers. Messages with one non-empty Key are
// never handled concurrently and keep their order within a subscription, also
// for n > 1: a message whose key is in flight waits behind it while the other
// workers go on. Messages with an empty Key have no order. Order across the
// competing subscriptions of one group is not kept.
//
// AsInbox is accepted and changes nothing: an inbox is the default group of a
// destination nobody else consumes.
package memory
