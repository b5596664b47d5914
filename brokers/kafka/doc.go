// Package kafka is syncgate's Kafka backend, on github.com/segmentio/kafka-go:
// a Publisher and a Subscriber implementing the brokers interfaces, set up
// from one Config (embedded in syncgate's configuration as broker.kafka).
//
// # Publishing
//
// Publish writes one record (key = Message.Key, headers = Message.Headers,
// value = Message.Body) and returns once the broker acknowledged it: the
// partition leader by default, every in-sync replica with acks "all"; acks
// "none" is refused. Keys are hashed with murmur2, as by the Java client, so
// one key keeps one partition and its order.
//
// Batching follows the load, not a timer: each topic has at most one round
// of produce requests in flight, one request per partition leader carrying
// the pending records of every partition it leads; a record published to an
// idle topic is sent at once, and the records published while a round is in
// flight go together in the next one. At concurrency 1 a publish costs one
// broker round trip (kafka-go's Writer would add its BatchTimeout: 1s by
// default, a 2s request/reply); under load a partition's share of a request
// grows to batch_size records. A
// fixed linger cannot do both: short, it makes requests smaller than the
// load once the broker is slower than the linger, and the queue of batches
// grows without bound; long, it is added to every request at low load.
// Produce requests go through kafka-go's Client and Transport (connection
// pool, metadata, SASL, TLS). Errors wrap
// brokers.ErrUnavailable when the broker cannot take the record now (down,
// no leader, acks not received; with the broker down Publish fails after
// about 250ms, whatever its context's deadline), brokers.ErrUnroutable when
// the topic does not exist (topics are not auto-created unless
// auto_create_topics is set: a typo in a route must not create a topic nobody
// reads) or may not be written, ErrMessageTooLarge above max_message_bytes.
// As with any Kafka producer, a publish that timed out may still have been
// written (at-least-once).
//
// # Consuming: services
//
// A service's Subscribe joins a consumer group (brokers.WithGroup, default
// "syncgate.<topic>"); the group's members share the topic's partitions. A
// group without committed offsets starts at the beginning of the topic, so
// requests published before the first instance started are handled.
// Records go to Concurrency workers by key hash: one key's records are
// handled one at a time and in order, different keys in parallel, even
// within one partition. An offset is committed (every commit_interval, and
// when a generation or the subscription ends) only once its record and all
// before it in the partition were handled successfully, or dead-lettered. A
// handler error hands the same record to the handler again after a backoff
// (retry_backoff_min..max); a member that stops or crashes before
// committing leaves the record to the next owner (at-least-once).
//
// # Dead letters
//
// A record whose handler failed max_deliveries times (default 5, counted
// in this process) is a poison request: it is produced to the dead-letter
// topic (dead_letter_topic, default "<topic>.dlt"; created with the
// topic's partition count when first needed, whatever auto_create_topics
// says) to the record's own partition, with its key, value and headers
// unchanged and then the headers of Spring Kafka's
// DeadLetterPublishingRecoverer: kafka_dlt-original-topic,
// kafka_dlt-original-partition (big-endian int32),
// kafka_dlt-original-offset and kafka_dlt-original-timestamp (big-endian
// int64, milliseconds), kafka_dlt-original-timestamp-type,
// kafka_dlt-original-consumer-group, kafka_dlt-exception-fqcn (the Go type
// of the handler's error, such as "*errors.errorString"),
// kafka_dlt-exception-message (its text, at most 1 KiB), plus
// x-syncgate-attempts (decimal). Only once the broker acknowledged the dead
// letter is the DeadLetter callback called (brokers.WithDeadLetter; the
// responder answers the waiting caller with a 502 problem) and the record
// marked handled, so its partition moves on. A dead letter that cannot be
// produced is retried with the same backoff, never dropped and never
// committed past: the record's key waits, and a member that stops meanwhile
// leaves the record to the next. max_deliveries -1 turns dead-lettering
// off: a failing record is retried until it succeeds or its partition
// moves. The reply inbox never dead-letters.
//
// # Headers
//
// Record headers are the message's headers. A key a record carries several
// times reaches brokers.Message.Headers as one value, the record's values in
// order joined by "\n"; Publish writes a value of several lines as one
// record header per line, in order (TestRepeatedHeaders).
//
// # Consuming: the gateway's reply inbox
//
// Replies are routed by topic: each gateway node has its own reply topic,
// whose name it puts in every request's reply-to header (for example
// "syncgate.reply.<node>"), and a service publishes its reply there with an
// ordinary Publish. The alternative, one shared reply topic with some
// partitions per node, was rejected: reply-to would have to name a partition
// and every service, in any language, would have to produce to that exact
// partition instead of to a topic; the node count would be capped by the
// partition count and scaling would mean reassigning partitions. A topic per
// node needs none of that and is what RabbitMQ's per-node reply queue is.
// Its cost is one topic per node id, so node ids should be stable (a
// StatefulSet ordinal, a host name), and a retired node's topic deleted.
//
// Subscribe with brokers.AsInbox consumes every partition of the node's
// topic, creating it if needed (inbox_partitions partitions, retention
// inbox_retention, whatever auto_create_topics says: the topic belongs to
// the node). Partitions are not assigned by a group protocol: the inbox
// reads all of them, so a rebalance never pauses replies. The partitions are
// listed when the inbox positions itself: partitions added to a reply topic
// later are read once the inbox notices the change (see Broker outages).
// Offsets are committed, as simple commits under the group (default: the
// topic's name), so a restarted node resumes where it stopped and receives
// the replies that arrived while it was down.
//
// # One process per reply topic
//
// Two processes with one node id would each take some of the other's
// replies (200, 504, 200, 504...). Before it reads anything, the inbox takes
// a lock made of consumer group membership, which Kafka keeps only while
// the member heartbeats: it joins the group "syncgate.inbox-lock.<topic>"
// (LockGroup) and reads the members' claims with DescribeGroups. A member
// that already owns the topic wins over one that never did, so a running
// node is never displaced; two processes starting at once are told apart
// by a random ticket, then by member id, and exactly one wins. The loser's
// Subscribe returns an error wrapping brokers.ErrInUse (the gateway node
// exits, naming its id), in about a heartbeat_interval when the owner is
// alive. An owner that stopped cleanly leaves the group and its successor
// starts at once; one that crashed keeps its membership until its session
// lapses, so a restart with the same id (or a cluster node adopting the
// crashed node's replies) waits at most that long: 6s, the least a broker
// accepts by default (or three heartbeat_intervals, at most
// session_timeout). On a real Kafka a new group's first join also waits
// group.initial.rebalance.delay.ms (3s by default). An owner that finds
// another owner winning later (each took the lock while the other could not
// reach the broker) stops with ErrInUse as well. Tests: TestInboxInUse,
// TestInboxInUseSimultaneousStart.
//
// Ready (brokers.WithReady) is called only once the topic exists and every
// partition has a definite start: its committed offset, or its first offset
// when none was committed. A reply produced at any time after the topic was
// created, before Ready or after it, is therefore delivered; the gateway
// reports ready only after Ready. TestInboxNoReplyLost proves it for a reply
// produced before the consumer existed, one produced from inside the Ready
// callback, and one produced while the node was stopped.
//
// Whatever arrives on a reply topic reaches the handler: records without
// headers, with a malformed correlation id, far larger than the fetch size.
// The consumer never stops on one; the gateway's handler counts, logs and
// drops invalid replies and returns nil.
//
// # Broker outages
//
// Nothing needs restarting when the broker comes back, with its data or
// empty (kafka-embedded without -data-dir, a topic deleted). Publish fails
// fast while it is away (brokers.ErrUnavailable). Readers reconnect with
// backoff (read_backoff_min..max); a consumer group rejoins
// (join_group_backoff) and resumes from its committed offsets, within about
// session_timeout when the broker kept the group's old membership. Each
// failing loop logs one warning when it starts failing and one line when it
// works again, not one line per attempt.
//
// The reply inbox asks the broker every second whether its topic is still
// the one it reads (metadata, the partitions' end offsets and its committed
// offsets, over a new connection each time, since cached metadata would
// still show a topic the broker lost: three small requests and a connection
// a second per node, a TLS and SASL handshake included). Unanswered, the inbox is down: Ready is false and
// offsets are not committed. When the topic is missing, has other
// partitions, ends before a reader's position, or lost the offsets the inbox
// committed, the broker forgot it: the inbox logs one warning, drops the
// old offsets, recreates the topic (whatever auto_create_topics says, as at
// start), reads every partition from its first offset (so no reply produced
// to the new topic is lost, whoever created it), logs one info line and
// serves again: within about a second of the broker's return.
// TestInboxSurvivesEmptyRestart covers both the inbox recreating the topic
// and a service's reply recreating it first (the silent stall this
// replaced: readers waiting at offsets the new topic had not reached).
//
// A request topic gone from an empty broker: with auto_create_topics the
// service's consumer recreates it (Partitions partitions), and so does a
// publisher on a broker that creates topics on request, within metadata_ttl
// (its cached metadata lists the topic until then); a publish succeeds again
// once it exists (TestPublisherRecreatesTopicAfterEmptyRestart). Without it a publish fails with
// brokers.ErrUnroutable (the gateway answers 503) and the consumer keeps
// waiting for the topic (Subscribe does not return) and consumes it once an
// operator creates it again (TestGroupSurvivesEmptyRestart).
//
// Broker.Ready (the gateway's /readyz check "broker") is false within about
// a second of the broker becoming unreachable (dial_timeout more when it
// does not refuse connections), from the first failed attempt when it is
// unreachable at start, and while a lost reply topic is recreated; true
// again within about a second of the broker answering. (That the inbox is
// positioned at all is the Ready callback's news: the gateway's check
// "reply-consumer".)
//
// # Trying it without Kafka
//
// cmd/kafka-embedded runs kfake, an in-process broker speaking the Kafka
// protocol, on 127.0.0.1:9092:
//
//	go run ./cmd/kafka-embedded -topics demo.echo
//
// Point the gateway and services at it (broker.kafka.brokers:
// [127.0.0.1:9092]). This package's tests run on kfake the same way, and on a
// real cluster when SYNCGATE_KAFKA_BROKERS lists its brokers.
//
// # Sizes
//
// max_message_bytes (default 1 MiB + 64 KiB, room for a 1 MiB body and its
// headers) bounds a published record and is the fetch size. Topics this
// package creates get a max.message.bytes to match; topics an operator
// creates need one too, as the broker default (1 MiB + 12 bytes) refuses a
// 1 MiB body with its headers.
package kafka
