package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	metadataAPI "github.com/segmentio/kafka-go/protocol/metadata"

	"github.com/syncgate/syncgate/brokers"
)

// logger is cfg.Logger, or slog.Default(), under component.
func (cfg Config) logger(component string) *slog.Logger {
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	return log.With("component", component)
}

// Publisher publishes records and returns from each Publish once the broker
// acknowledged it (Config.Acks). Each topic has at most one round of
// produce requests in flight (one request per partition leader): a record
// published while its topic is idle is sent at once, and records published
// while a round is in flight go together in the next one. Batches thus grow
// with the load and the broker's latency instead of with a timer (see
// lane), and per-partition order holds.
type Publisher struct {
	cfg       Config
	sec       security
	addr      net.Addr
	log       *slog.Logger
	transport *kafkago.Transport
	balancer  kafkago.Murmur2Balancer

	mu       sync.RWMutex
	closed   bool
	inflight sync.WaitGroup // Publish calls
	sending  sync.WaitGroup // lane goroutines
	stop     context.Context
	cancel   context.CancelFunc
	once     sync.Once

	lanesMu sync.Mutex
	lanes   map[string]*lane // by topic

	probeMu sync.Mutex
	missing map[string]time.Time // topic → when a probe last found it missing

	// counts caches each topic's partition count for MetadataTTL. kafka-go's
	// transport caches metadata too, but every lookup through it copies the
	// response filtered to the topic: a few allocations per Publish, about
	// 6 % of a replying service's allocated bytes (issue 17). An entry goes
	// when a publish to its topic fails, so a topic recreated with other
	// partitions is looked up again at once.
	counts sync.Map // topic → partitionCount
}

// partitionCount is a topic's partition count, valid until expires.
type partitionCount struct {
	n       int
	expires time.Time
}

var _ brokers.Publisher = (*Publisher)(nil)

// NewPublisher returns a Publisher for cfg (defaults applied to a copy). It
// does not connect: the first Publish does, and an unreachable broker is
// reported by Publish.
func NewPublisher(cfg Config) (*Publisher, error) {
	cfg, sec, err := cfg.prepare()
	if err != nil {
		return nil, err
	}
	p := &Publisher{
		cfg:     cfg,
		sec:     sec,
		addr:    kafkago.TCP(cfg.Brokers...),
		log:     cfg.logger("kafka.publisher"),
		lanes:   make(map[string]*lane),
		missing: make(map[string]time.Time),
	}
	p.transport = cfg.transport(sec)
	p.stop, p.cancel = context.WithCancel(context.Background())
	return p, nil
}

// Publish writes m to topic dest and returns once the broker acknowledged it.
// Errors wrap brokers.ErrUnavailable (broker unreachable, no leader, acks
// not received, ctx's deadline while waiting), brokers.ErrUnroutable (no
// such topic, not allowed to write it), ErrMessageTooLarge or
// brokers.ErrClosed.
//
// A record whose Publish gave up (ctx ended) before its produce request was
// sent is not sent. One already sent may have been written although Publish
// failed: at-least-once. Publish copies m; the caller may reuse it at once.
func (p *Publisher) Publish(ctx context.Context, dest string, m brokers.Message) error {
	if dest == "" {
		return fmt.Errorf("%w: kafka: empty topic", brokers.ErrUnroutable)
	}
	return p.guarded(ctx, dest, func(ctx context.Context) error {
		return p.publish(ctx, dest, newRecord(ctx, m), -1)
	})
}

// publish sends r to dest: to partition when it is a partition of dest,
// else to the partition of r's key. The caller holds p.inflight.
func (p *Publisher) publish(ctx context.Context, dest string, r *record, partition int) error {
	if r.size > p.cfg.MaxMessageBytes {
		return fmt.Errorf("%w: %d bytes to topic %q, kafka.max_message_bytes is %d", ErrMessageTooLarge, r.size, dest, p.cfg.MaxMessageBytes)
	}
	n, err := p.partitionsOf(ctx, dest)
	if err == nil {
		part := partition
		if part < 0 || part >= n {
			part = p.balancer.Balance(kafkago.Message{Key: r.key}, partitionList(n)...)
		}
		r.partition = part
		p.lane(dest).enqueue(r)
		select {
		case err = <-r.done:
		case <-ctx.Done():
			err = ctx.Err()
		}
	}
	if err != nil {
		p.counts.Delete(dest)
		if p.stop.Err() != nil {
			return fmt.Errorf("kafka: publish to %q: %w", dest, brokers.ErrClosed)
		}
	}
	return classify(dest, err)
}

func (p *Publisher) enter() bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	if p.closed {
		return false
	}
	p.inflight.Add(1)
	return true
}

// partitionsOf returns dest's partition count, from the Publisher's cache
// when it holds it, else from the cluster's metadata (refreshed once when
// the topic seems missing). Only a look-up that leaves the process is made
// to end when Close starts: the rest never blocks, so most publishes need
// no context of their own (issue 17).
func (p *Publisher) partitionsOf(ctx context.Context, dest string) (int, error) {
	if c, ok := p.counts.Load(dest); ok {
		if c := c.(partitionCount); time.Now().Before(c.expires) {
			return c.n, nil
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(p.stop, cancel)()
	n, err := p.partitions(ctx, dest)
	if errors.Is(err, kafkago.UnknownTopicOrPartition) && !p.cfg.AutoCreateTopics && p.refreshTopic(ctx, dest) {
		n, err = p.partitions(ctx, dest)
	}
	return n, err
}

// partitions returns the partition count of topic from the transport's
// cached metadata (asking the broker, and letting it create the topic, when
// auto-creation is on and the topic is not cached).
func (p *Publisher) partitions(ctx context.Context, topic string) (int, error) {
	now := time.Now()
	t, err := p.metadata(ctx, topic)
	if err != nil {
		return 0, err // publish drops the cached count on any error
	}
	p.counts.Store(topic, partitionCount{n: len(t.Partitions), expires: now.Add(p.cfg.MetadataTTL)})
	return len(t.Partitions), nil
}

// leaders returns the leader's broker id of each partition of topic, by
// partition id (-1: none known), from the transport's cached metadata.
func (p *Publisher) leaders(ctx context.Context, topic string) ([]int32, error) {
	t, err := p.metadata(ctx, topic)
	if err != nil {
		return nil, err
	}
	ids := make([]int32, len(t.Partitions))
	for i := range ids {
		ids[i] = -1
	}
	for _, part := range t.Partitions {
		if i := int(part.PartitionIndex); i >= 0 && i < len(ids) {
			ids[i] = part.LeaderID
		}
	}
	return ids, nil
}

// metadata returns topic's metadata, with at least one partition.
func (p *Publisher) metadata(ctx context.Context, topic string) (*metadataAPI.ResponseTopic, error) {
	r, err := p.transport.RoundTrip(ctx, p.addr, &metadataAPI.Request{
		TopicNames:             []string{topic},
		AllowAutoTopicCreation: p.cfg.AutoCreateTopics,
	})
	if err != nil {
		return nil, err
	}
	for i, t := range r.(*metadataAPI.Response).Topics {
		if t.Name != topic {
			continue
		}
		if t.ErrorCode != 0 {
			return nil, kafkago.Error(t.ErrorCode)
		}
		if len(t.Partitions) == 0 {
			return nil, kafkago.LeaderNotAvailable
		}
		return &r.(*metadataAPI.Response).Topics[i], nil
	}
	return nil, kafkago.UnknownTopicOrPartition
}

// refreshTopic handles a topic created after the transport's metadata was
// cached: kafka-go serves metadata from a cache refreshed every MetadataTTL,
// so a topic created a moment ago reads as missing. It asks the cluster
// directly (a fresh connection, at most once per MetadataTTL per missing
// topic) and, if the topic exists, refreshes the cache and reports true.
func (p *Publisher) refreshTopic(ctx context.Context, topic string) bool {
	p.probeMu.Lock()
	last, seen := p.missing[topic]
	p.probeMu.Unlock()
	if seen && time.Since(last) < p.cfg.MetadataTTL {
		return false
	}
	exists, err := topicExists(ctx, &p.cfg, p.sec, topic)
	if err != nil || !exists {
		if err == nil {
			p.probeMu.Lock()
			p.missing[topic] = time.Now()
			p.probeMu.Unlock()
		}
		return false
	}
	p.probeMu.Lock()
	delete(p.missing, topic)
	p.probeMu.Unlock()
	return p.forceMetadata(ctx, topic) == nil
}

// forceMetadata refreshes the transport's cached metadata of an existing
// topic. A metadata request allowing creation is the one kafka-go sends to
// the broker instead of answering from its cache, and it waits for the
// cache to hold the topic. The topic exists, so nothing is created.
func (p *Publisher) forceMetadata(ctx context.Context, topic string) error {
	_, err := p.transport.RoundTrip(ctx, p.addr, &metadataAPI.Request{
		TopicNames:             []string{topic},
		AllowAutoTopicCreation: true,
	})
	return err
}

// refreshMetadata is forceMetadata bounded by WriteTimeout and Close.
func (p *Publisher) refreshMetadata(topic string) {
	ctx, cancel := context.WithTimeout(p.stop, p.cfg.WriteTimeout)
	defer cancel()
	_ = p.forceMetadata(ctx, topic)
}

// Close makes in-flight publishes give up (brokers.ErrClosed), waits for
// them and for the produce requests already sent, and closes the
// connections. It is idempotent; concurrent calls all return when it is done.
func (p *Publisher) Close() error {
	p.once.Do(func() {
		p.mu.Lock()
		p.closed = true
		p.mu.Unlock()
		p.cancel()
		p.inflight.Wait()
		p.sending.Wait()
		p.transport.CloseIdleConnections()
	})
	return nil
}

// publishRecord writes one record as given (headers in order, repeated
// keys and binary values kept) to partition of dest, or to its key's
// partition when dest has no such partition. Dead-lettering uses it: a
// dead letter carries the original record's headers unchanged.
func (p *Publisher) publishRecord(ctx context.Context, dest string, partition int, key, value []byte, headers []kafkago.Header) error {
	return p.guarded(ctx, dest, func(ctx context.Context) error {
		r := &record{ctx: ctx, key: key, value: value, headers: headers, done: make(chan error, 1)}
		r.size = len(key) + len(value)
		for _, h := range headers {
			r.size += len(h.Key) + len(h.Value)
		}
		return p.publish(ctx, dest, r, partition)
	})
}

// guarded runs one publish to dest as Close expects: counted in flight
// and refused once closed. It does not cancel the publish when Close
// starts: a record handed to its lane is completed by the lane, with an
// error once Close began, and the metadata look-up that may leave the
// process ends with Close itself (partitionsOf). A context per publish
// for that was an eighth of a replying service's allocations.
func (p *Publisher) guarded(ctx context.Context, dest string, publish func(context.Context) error) error {
	if !p.enter() {
		return fmt.Errorf("kafka: publish to %q: %w", dest, brokers.ErrClosed)
	}
	defer p.inflight.Done()
	return publish(ctx)
}
