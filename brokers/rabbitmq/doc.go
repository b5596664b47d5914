// Package rabbitmq is syncgate's RabbitMQ backend on
// github.com/rabbitmq/amqp091-go. A Client implements brokers.Publisher and
// brokers.Subscriber; Dial it with a Config (embedded in syncgate's
// configuration under broker.rabbitmq).
//
// In syncgate's configuration (defaults shown):
//
//	broker:
//	  rabbitmq:
//	    url: amqp://guest:guest@127.0.0.1:5672/
//	    connection_name: syncgate
//	    exchange: ""                # default exchange
//	    queue_type: quorum          # or classic
//	    prefetch: 64
//	    max_deliveries: 5
//	    dead_letter_exchange: syncgate.dlx
//	    dead_letter_queue: syncgate.dlq
//	    reply_queue_expiry: 5m
//	    direct_reply_to: false
//	    transient_replies: false
//	    transient_requests: false
//	    confirm_timeout: 5s
//	    reconnect_interval: 500ms
//	    reconnect_attempts: 0       # 0: until Close
//	    heartbeat: 10s
//	    dial_timeout: 5s
//
// # Topology
//
// Everything is declared by the side that consumes it, idempotently, from
// Config:
//
//   - Publish(ctx, dest, m) sends to the queue named dest. With
//     Config.Exchange empty (default) it publishes to the default exchange
//     with routing key dest; with an exchange, the Client declares it (durable,
//     direct) and publishes there with routing key dest, and every queue a
//     Subscribe declares is bound to it under its source name. Publishing is
//     mandatory: a destination without a queue is reported as
//     brokers.ErrUnroutable at once, so the gateway answers 503 instead of
//     waiting out the request's budget. Addresses amq.rabbitmq.reply-to.*
//     always go through the default exchange and without mandatory (RabbitMQ
//     returns them as NO_ROUTE although it delivers them).
//   - Subscribe(ctx, source, h) on a service: a durable quorum queue named
//     source (x-queue-type quorum), with x-delivery-limit MaxDeliveries-1 and
//     x-dead-letter-exchange DeadLetterExchange. The broker counts deliveries
//     (the x-delivery-count header) and, once a message was delivered
//     MaxDeliveries times without an ack, dead-letters it (x-death reason
//     delivery_limit). With QueueType classic the queue is a durable classic
//     queue, which counts nothing: the subscription numbers attempts in the
//     integer header x-syncgate-attempt (handlers do not see it). A failed
//     delivery is acked once a copy numbered one more is confirmed at the
//     tail of the queue (published to the queue itself through the default
//     exchange, so no other queue bound to the source gets it); a delivery
//     that comes back redelivered (its handler never settled it: a crash, a
//     dropped connection, or a stopping subscriber that requeued it
//     unhandled) is counted the same way before it is handled; the
//     delivery after the last attempt is rejected to the dead-letter
//     exchange (x-death reason rejected). A connection lost between a
//     copy's confirm and the ack of its original leaves both (at least
//     once); while the copy cannot be published, a failed delivery is
//     requeued as it is, after ReconnectInterval. With an exchange, WithGroup(g) consumes a queue named g
//     bound under source, so each group gets every message; with the default
//     exchange the group is ignored: every subscriber of source competes for
//     the messages of the one queue named source.
//   - Subscribe(ctx, replyTo, h, brokers.AsInbox()) on a gateway node: a
//     durable classic queue named replyTo with x-expires ReplyQueueExpiry
//     (not exclusive, not auto-delete), so it outlives a dropped connection
//     or a broker restart and replies published meanwhile wait in it; an
//     abandoned node's queue is deleted after the expiry. A reply whose
//     handling fails is requeued once (classic queues have no delivery
//     count; the redelivered flag is used) and then dead-lettered. The
//     queue is consumed with an exclusive consumer (basic.consume
//     exclusive), the lock that keeps two processes with one node id from
//     splitting its replies: the broker refuses a second consumer (403
//     ACCESS_REFUSED, in exclusive use), and Subscribe returns an error
//     wrapping brokers.ErrInUse after retrying for 3 s (a consumer being
//     closed, such as a cluster node handing an adopted queue back, is
//     gone by then). The exclusive consumer dies with its connection, and
//     the recovered subscription consumes exclusively again; after a
//     reconnection a refusal is retried for three heartbeats (the broker
//     may not have noticed yet that the previous connection is dead)
//     before Subscribe returns ErrInUse. A process killed without a TCP
//     close (a vanished host) holds its id until the broker misses its
//     heartbeats. Direct reply-to needs no lock: its address belongs to
//     one connection.
//   - Dead letters: DeadLetterExchange is a durable fanout exchange with the
//     durable queue DeadLetterQueue bound to it. Requests that expire in their
//     queue (see below) are dead-lettered there too, with reason expired.
//     When a handler fails on a message's last attempt (quorum: the
//     delivery's x-delivery-count reached MaxDeliveries-1; classic: the
//     attempt header reached MaxDeliveries; reply queue: a redelivery), the
//     subscription calls the DeadLetter callback (brokers.WithDeadLetter)
//     once with the message and the handler's error, then settles it to the
//     dead-letter exchange, so brokers/responder answers the waiting caller
//     with a 502 at once. A classic-queue message whose last attempt ended
//     unsettled (a dropped connection) is reported when it comes back, with
//     an error saying so; a quorum-queue message whose last attempt ended
//     unsettled is dead-lettered by the broker without a callback.
//
// # Messages
//
// Envelope headers travel as AMQP headers unchanged, except correlation-id,
// reply-to and content-type, which travel as the properties correlation_id,
// reply_to and content_type only (a subscription turns them back into
// headers, and takes a header of those names from another publisher too);
// the deadline header also sets expiration to the remaining milliseconds.
// Messages are persistent (delivery mode 2), except replies with
// TransientReplies and requests with TransientRequests (see Durability and
// latency below). Message.Key travels in the header x-syncgate-key unless it
// is the correlation id (always, for envelope messages).
// Headers the broker adds (x-death, x-delivery-count, x-first-death-*,
// x-last-death-*, CC, BCC) are not passed to handlers.
//
// Services in other languages send typed header values (amqplib sends
// headers: {status: 201} as an integer), and a subscription turns every
// AMQP value into the string the contract expects: strings and byte arrays
// as they are; integers of every width and floats in decimal (a whole
// float without a fraction: 201.0 is "201"); decimals with their scale
// ("123.45"); booleans as true or false; timestamps as an HTTP date
// (IMF-fixdate, UTC); void as nothing. An AMQP array of those is a header
// carried several times: one value, its values in order joined by "\n" (see
// brokers.Message); Publish sends a value holding "\n" as an AMQP array of
// strings. A value with no string form (a nested table, an array of arrays
// or tables, NaN, an infinity) is left out of the message, and the
// subscription logs a warning naming the header and the correlation id.
//
// # Delivery
//
// Publish returns after the broker's publisher confirm. A subscription has a
// prefetch (QoS) of Prefetch, runs Concurrency handlers in parallel, acks
// each delivery after its handler returned nil and nacks it with requeue
// after an error (on a classic work queue: requeues a counted copy, see
// Topology), in whatever order handlers finish. Delivery is at least
// once: a message whose handler was running when the connection dropped is
// redelivered. With concurrency 1 a queue is consumed in order, but a
// nacked message goes back to the tail of its quorum queue, so messages
// published after it overtake its redelivery.
//
// Every nack with requeue spends one of a quorum queue's MaxDeliveries at
// once (the broker counts every return; there is no back-off before the
// redelivery), so a connection blip must not fail deliveries. A handler
// error wrapping brokers.ErrUnavailable (the handler could not publish its
// reply: the broker is unavailable, not the message bad) does not return
// the delivery: the subscription holds it unsettled and calls the handler
// again with a jittered backoff (50 ms doubling to 1 s) until the
// message's deadline header (30 s without one), the subscription stops or
// its connection drops; only then is the error settled as any other. No
// attempt is spent meanwhile (on classic queues neither). brokers/responder
// goes further and retries only the reply publish, without calling the
// service's function again.
//
// # Reconnection
//
// Connection loss is recovered by amqp091-go itself (Config.Recovery:
// ReconnectAttempts attempts, ReconnectInterval apart plus up to 500ms of
// jitter). The Client installs a ConnectionRecovery hook that runs, on the
// library's goroutine, before each reconnection; NotifyStateChange tells it
// when connections and channels are open again.
//
//   - Publishing: the hook marks the publisher down, so Publish fails at once
//     with brokers.ErrUnavailable during an outage, and publishes waiting for a
//     confirm fail with it too (the message may or may not have been queued).
//     Publishing resumes when the library reports the connection and channel
//     reopened. The publishing connection uses the library's topology
//     recovery (the exchange, the direct reply-to consumer).
//   - Subscriptions: each Subscribe has its own connection, recovered by the
//     library, but with topology recovery disabled: after the channel reopens,
//     the subscription declares its queue again and consumes with a fresh
//     consumer tag. The library's consumer recovery would reuse the old tag,
//     and a handler that finishes after the reconnection would ack its old
//     delivery tag on the new channel, where tags restart at 1: the broker
//     closes the channel (PRECONDITION_FAILED, unknown delivery tag) or the
//     ack lands on another message. The hook retires the consumer before the
//     reopen; acks of retired consumers are not sent (the broker has
//     requeued those messages already).
//   - Channel exceptions (the broker closing one channel on a live
//     connection, e.g. a queue declared with other arguments) are turned into
//     a connection reset, handled by the connection recovery above: the
//     library's own channel recovery reopens the channel number at once and
//     can wait forever for an answer RabbitMQ dropped. A Subscribe whose
//     declaration the broker refuses returns that error.
//   - Client.Ready reports whether the Client publishes and every running
//     subscription consumes; unlike the one-time WithReady callback it turns
//     false during an outage, for /readyz.
//
// Replies published to a node's reply queue while the node is disconnected
// stay in the queue and are delivered when its subscription resumes; with
// durable queues and persistent messages this holds across a broker restart
// (unless TransientReplies, below).
// A Subscribe started while the broker is unreachable keeps dialling until
// its context ends (the library only recovers connections that once
// succeeded); Dial itself fails at once: with an error wrapping
// brokers.ErrUnavailable when the broker cannot be reached, or
// ErrAccessRefused (not ErrUnavailable: retrying does not cure it) when it
// refuses the URL's user name and password or the user's access to the
// vhost.
//
// # Durability and latency
//
// What a round trip costs is mostly the broker's durability work. By
// default requests go to a quorum queue, which delivers and confirms a
// message only once its Raft log is fsynced: on one node with an ordinary
// disk that is most of a round trip at concurrency 1 (about 1.2 of 1.6 ms on
// the machine the benchmarks ran on), and no client-side change removes it. A persistent reply in
// the node's durable classic reply queue is written to the queue's index and
// message store, and its confirm waits for their fsync; its ack is written
// too. With TransientReplies the service publishes replies with delivery
// mode 1: the reply queue is still durable with x-expires, so replies
// published while a node is disconnected still wait for it, but a reply
// waiting there when the broker restarts is lost (its request ends at its
// deadline: 202 on pollable routes, 504 otherwise). Requests are unaffected.
// It is off by default. Publishing on several channels instead of one was
// measured and did not help: the broker, not the channel, is the limit.
//
// The latency profile is QueueType classic with TransientRequests and
// TransientReplies, on the services and on the gateway alike: requests and
// replies stay in memory, nothing waits for a disk, and a round trip at
// concurrency 1 takes about a third of the default's (BENCHMARKS.md).
// Publisher confirms, mandatory publishing, manual acks, the attempt limit,
// the dead-letter exchange and the reply queue that outlives a dropped
// connection all stay; what goes is surviving a broker restart: requests
// and replies waiting in queues then are lost, and their requests end at
// their deadline (202 on pollable routes, 504 otherwise). A classic queue
// also lives on one broker node, where a quorum queue is replicated.
//
// # Direct reply-to
//
// With DirectReplyTo, the inbox subscription consumes amq.rabbitmq.reply-to
// on the publishing channel (no queue, no acks, lowest latency), and requests
// whose reply-to names the inbox carry reply_to amq.rabbitmq.reply-to. The
// trade-off is at-most-once replies: a reply published while the requesting
// connection is down, or in flight when it drops, is lost, and its request
// ends at its deadline (202 on pollable routes, 504 otherwise).
package rabbitmq
