// Package nats is syncgate's NATS backend on github.com/nats-io/nats.go. A
// Client implements brokers.Publisher and brokers.Subscriber on one
// connection; Dial it with a Config (meant to be embedded in syncgate's
// configuration under broker.nats).
//
// In syncgate's configuration (defaults shown):
//
//	broker:
//	  nats:
//	    url: nats://127.0.0.1:4222    # several: comma-separated
//	    name: syncgate
//	    user: ""                      # or token, or credentials_file
//	    password: ""
//	    token: ""
//	    credentials_file: ""
//	    tls: {enable: false}          # ca_file, cert_file, key_file, server_name
//	    mode: core                    # or jetstream
//	    reply_prefix: syncgate.reply.
//	    stream_prefix: SYNCGATE_
//	    storage: file                 # or memory
//	    replicas: 1
//	    max_deliveries: 5
//	    retry_delay: 100ms
//	    max_retry_delay: 5s
//	    ack_wait: 5s
//	    prefetch: 0                   # 0: the subscription's concurrency
//	    dead_letter: syncgate.dead-letter
//	    dead_letter_max_age: 168h
//	    body_bucket: syncgate_bodies
//	    body_ttl: 1h
//	    confirm_timeout: 5s
//	    dial_timeout: 5s
//	    reconnect_interval: 500ms
//	    reconnect_attempts: 0         # 0: until Close
//	    ping_interval: 10s
//
// Services and gateway must use the same mode: a JetStream publish to a
// subject a core subscriber listens on reaches that subscriber but waits in
// vain for a stream's ack.
//
// # Subjects
//
// A destination is a NATS subject (dot-separated tokens, no wildcards).
// In core mode every subject is core NATS. In jetstream mode subjects
// starting with ReplyPrefix (the gateway nodes' reply subjects: syncgate's
// default reply_to, syncgate.reply.<node>, is under the default prefix) are
// core NATS, and every other subject goes through a stream:
//
//   - Subscribe(ctx, subject, h) creates, if it does not exist, the stream
//     Config.StreamName(subject) (StreamPrefix plus the subject with dots
//     as underscores) capturing only that subject, with work-queue
//     retention (a message is removed once acknowledged), Storage and
//     Replicas, and on it the durable pull consumer named after the group
//     (DefaultGroup without WithGroup): explicit acks, AckWait, no server
//     delivery limit (the subscription counts, below). A work-queue stream
//     admits one consumer: a subject has one group, and a Subscribe with
//     another group fails naming the conflict. A stream that exists with
//     other settings is used as it is, provided it captures the subject.
//   - Publish to a subject no stream captures fails with
//     brokers.ErrUnroutable: a typo in a route is a 503, not a request that
//     waits forever. Requests published before the service first
//     subscribed are therefore refused, not queued.
//   - Dead letters go to a stream <stream_prefix>DEAD_LETTER capturing
//     DeadLetter, kept DeadLetterMaxAge.
//
// # Messages
//
// Every envelope header travels as a NATS header of the same, lower-case
// name (NATS header names are case-sensitive); the body is the data,
// unchanged. A value holding "\n" (brokers.Message's convention for a
// header carried several times) travels as that many values of one
// header, and a header a publisher in another language sends several times
// arrives joined by "\n". NATS trims white space around a value and turns
// CR and LF into spaces: a value that would change so (leading or trailing
// white space, control characters) travels Go-quoted (strconv.Quote), and
// the header x-syncgate-quoted names it (one value per header); other
// values travel as they are, so services in other languages read the
// envelope with their own NATS client. Message.Key travels in
// x-syncgate-key unless it is the correlation id (always, for envelope
// messages). Headers other publishers add, Nats-Msg-Id included (it
// deduplicates JetStream publishes), pass through both ways, except a
// Nats-Msg-Id equal to the correlation id, which handlers do not see (the
// one this package sets, below).
//
// A message larger than the server's max_payload (1 MB by default, less
// than syncgate's 1 MiB body limit plus headers) has its body put in the
// JetStream object store BodyBucket under a random name, and travels with
// the header x-syncgate-body: <bucket>/<name> and no data; subscriptions
// fetch the body before the handler sees the message, jetstream
// subscriptions delete the object once the message is acknowledged, and
// BodyTTL removes the rest (core subscriptions cannot know who else got
// the message). This needs JetStream on the server, in core mode too;
// without it such a Publish fails with ErrMessageTooLarge. A body that is
// gone when its message arrives (BodyTTL passed) is dead-lettered at once.
//
// A dead letter carries the message's headers and data as they came, plus
// x-syncgate-dead-letter-reason (the handler's last error, on one line)
// and x-syncgate-dead-letter-subject.
//
// # Delivery
//
// Core mode is at most once. Publish returns nil once the message is
// written to the connection while it is up; there is no acknowledgement,
// and the server delivers it to the subscribers it has at that moment: to
// none when no service subscribes (a request then ends at its deadline:
// 202 on pollable routes, 504 otherwise). A subscription is a queue
// subscription in its group, so the group's members share the messages.
// A handler error is retried in place, by the same goroutine, after
// RetryDelay doubling to MaxRetryDelay, up to MaxDeliveries attempts; the
// last failure publishes the message to DeadLetter (a core publish, kept
// only if a stream of your own captures it) and calls the DeadLetter
// callback. Order: one subscription with concurrency 1 handles its
// messages in order, retries included. A subscription that stops
// publishes the messages it took but had not handled, or whose handler
// was interrupted, back to the subject for the group's other members (best
// effort: with no member left they are lost). A consumer that crashes
// loses what it held (the suite's NoConsumerCrashRedelivery).
//
// Jetstream mode is at least once for requests. Publish returns nil once
// the stream stored the message (on Replicas servers). A message with a
// correlation id (a request) is published with it as its Nats-Msg-Id,
// unless it carries a Nats-Msg-Id of its own: the stream stores one message
// of an id within its duplicate window (the stream's duplicate_window, 2
// minutes unless an operator set another), so a request published again,
// as the gateway's outbox does after a publish whose ack did not come in
// time although the stream took it, is handled once. Publish returns nil
// for the duplicate too. (A large body offloaded to the body bucket by the
// duplicate stays there until BodyTTL.) A subscription
// pulls with one fetch at a time of up to its concurrency (or Prefetch);
// a delivery is acknowledged after the handler returned nil; after an
// error it is nakked with the retry delay (the server counts deliveries);
// the failure of the MaxDeliveries-th delivery publishes it to DeadLetter
// (waiting for the dead-letter stream's ack), calls the DeadLetter callback
// and removes it. A delivery that comes back after more than MaxDeliveries
// (earlier attempts ended unsettled: a consumer stopped or crashed while
// handling it) is dead-lettered without calling the handler. A delivery
// the subscription holds, waiting for a free handler or being handled, is
// kept with in-progress acks every AckWait/2, however long that takes. A
// subscription that stops reads its last fetch until the server ends it
// (within a second) and naks what it took and did not handle, so another
// consumer gets it at once. A nakked message is
// redelivered after its delay while the messages behind it go on: order
// per key does not hold around a failure (the suite's NoOrderPerKey).
// Replies stay core NATS, but confirmed: a Publish to a subject under
// ReplyPrefix is a core request (a reply subject, nats.go's shared reply
// subscription), and a subscription of this package answers it with an
// empty message once its handler returned nil for it. Publish returns nil
// on that answer, and fails with brokers.ErrUnavailable when nobody
// subscribes to the subject (the gateway node is disconnected, or
// reconnected after the service did) or no answer comes within
// ConfirmTimeout: the service's handler then fails or retries (the
// responder SDK publishes again with a backoff until the request's
// deadline, keeping the request unsettled), and does not acknowledge a
// request whose reply reached nobody. A reply taken whose answer is lost
// is published again; the gateway keeps the first. This costs a message
// and a wait of one round trip per reply, and holds a service's handler
// slot that long. A reply published plainly (no reply subject, as a
// service in another language may) is delivered as before, unconfirmed.
//
// Reply inboxes (brokers.AsInbox) are plain core subscriptions (no group),
// in either mode. The messages of one correlation id are handled by one of
// Concurrency goroutines, in the order they came (a service's progress
// messages before its reply). An inbox answers the probe
// (x-syncgate-probe) a new inbox subscription sends first: while another
// live process answers on the subject for 3 s, Subscribe returns an error
// wrapping brokers.ErrInUse (two processes with one node id). Two
// processes that start at the same instant can both miss each other.
//
// # Reconnection
//
// nats.go reconnects after a loss (ReconnectInterval between attempts,
// ReconnectAttempts per server, 0: until Close) and subscribes the core
// subscriptions again by itself. While disconnected, Publish fails at once
// with brokers.ErrUnavailable: the library's reconnect buffer is off, so
// nothing waits for a reconnection that may not come, and the gateway
// answers 503 or queues in its outbox. A jetstream subscription's fetch
// loop waits for the reconnection and pulls again; when its consumer (or
// stream) is gone, e.g. memory storage after a server restart or an
// operator's delete, it declares them again. Ready reports false while
// disconnected or while a jetstream subscription cannot consume, for
// /readyz. PingInterval (default 10s, two missed) bounds how long a server
// that vanished without closing the connection goes unnoticed.
//
// What a server restart loses in core mode: every message the server held
// at that moment, which is every request and reply in transit (published,
// not yet written to a subscriber), and what subscribers' connections had
// not read; their requests end at their deadline (202 or 504). Requests
// published during the restart are refused (ErrUnavailable: 503, or the
// outbox). Subscriptions come back by themselves; a service handling a
// request across the restart answers once reconnected, and the reply
// arrives if the gateway node is connected by then. In jetstream mode
// requests in streams with file storage survive the restart and are
// delivered after it (memory storage loses them, and the streams and
// consumers are declared again), and a reply is published again until the
// gateway node, reconnected, confirms it (see Delivery). A
// request the server had sent a service that had not received it when the
// server stopped is delivered again AckWait after it was first sent (5 s
// by default): a route's timeout should exceed AckWait with room for the
// handler, or such a request ends at its deadline.
//
// Dial fails at once with an error wrapping brokers.ErrUnavailable when the
// server cannot be reached, ErrAccessRefused (not ErrUnavailable: retrying
// does not help) when it refuses the credentials, and in jetstream mode
// with an error naming nats.mode when the server has no JetStream.
// JetStream 2.9 or later is needed (tested with 2.9.10).
package nats
