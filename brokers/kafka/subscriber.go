package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/syncgate/syncgate/brokers"
)

// Subscriber consumes topics. A subscription for services joins a consumer
// group (SubscribeConfig.Group, default "syncgate.<topic>"): members share
// the topic's partitions, each partition is consumed in order, an offset is
// committed only after the handler returned nil for its record (or the
// record was dead-lettered), and a record whose handler failed is handed to
// it again (after a backoff) until it succeeds, the partition moves to
// another member, which then receives it, or it failed MaxDeliveries times
// and goes to the dead-letter topic.
// A reply inbox subscription (brokers.AsInbox) consumes every partition of
// the node's own reply topic without a group protocol; see the package
// documentation.
type Subscriber struct {
	cfg    Config
	sec    security
	dialer *kafkago.Dialer
	log    *slog.Logger

	pubMu sync.Mutex
	pub   *Publisher // dead letters; made at first use

	mu      sync.Mutex
	closed  bool
	inboxes map[*inboxHealth]struct{} // live inbox subscriptions, for Ready
	subs    sync.WaitGroup
	stop    context.Context // ends when Close starts
	cancel  context.CancelFunc
	once    sync.Once
}

var _ brokers.Subscriber = (*Subscriber)(nil)

// NewSubscriber returns a Subscriber for cfg (defaults applied to a copy).
// It does not connect: each Subscribe does.
func NewSubscriber(cfg Config) (*Subscriber, error) {
	cfg, sec, err := cfg.prepare()
	if err != nil {
		return nil, err
	}
	s := &Subscriber{
		cfg:    cfg,
		sec:    sec,
		dialer: cfg.dialer(sec),
		log:    cfg.logger("kafka.subscriber"),
	}
	s.stop, s.cancel = context.WithCancel(context.Background())
	return s, nil
}

// DefaultGroup is the consumer group of a service subscription to topic that
// names none.
func DefaultGroup(topic string) string { return "syncgate." + topic }

// Subscribe consumes source until ctx ends or Close is called (then it
// returns nil once its handler calls returned and its offsets are
// committed), or until a fatal error: the topic does not exist (and
// AutoCreateTopics is off), authentication or authorization failed. A broker
// that cannot be reached is not fatal: Subscribe keeps trying and calls
// Ready only once it is positioned.
//
// Concurrency n lets up to n partitions' handlers run at once; records of one
// partition, hence of one key, are always handled one at a time, in order.
func (s *Subscriber) Subscribe(ctx context.Context, source string, h brokers.Handler, opts ...brokers.SubscribeOption) error {
	if source == "" {
		return errors.New("kafka: subscribe: empty topic")
	}
	if h == nil {
		return errors.New("kafka: subscribe: nil handler")
	}
	sc := brokers.NewSubscribeConfig(opts...)
	if !s.enter() {
		return fmt.Errorf("kafka: subscribe to %q: %w", source, brokers.ErrClosed)
	}
	defer s.subs.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(s.stop, cancel)()

	var ready sync.Once
	sc.Ready = func(f func()) func() { return func() { ready.Do(f) } }(sc.Ready)
	if sc.Inbox {
		return s.consumeInbox(ctx, source, h, sc)
	}
	return s.consumeGroup(ctx, source, h, sc)
}

func (s *Subscriber) enter() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.subs.Add(1)
	return true
}

// Close ends every subscription and returns once their goroutines exited
// and their last offsets were committed. It is idempotent.
func (s *Subscriber) Close() error {
	s.once.Do(func() {
		s.mu.Lock()
		s.closed = true
		s.mu.Unlock()
		s.cancel()
		s.subs.Wait()
		s.pubMu.Lock()
		if s.pub != nil {
			_ = s.pub.Close()
		}
		s.pubMu.Unlock()
	})
	return nil
}

// setup retries f until it succeeds, fails for good, or ctx ends (nil then).
func (s *Subscriber) setup(ctx context.Context, topic string, f func(context.Context) error) (bool, error) {
	for attempt := 0; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout+s.cfg.WriteTimeout)
		err := f(actx)
		cancel()
		switch {
		case err == nil:
			return true, nil
		case ctx.Err() != nil:
			return false, nil
		case errors.Is(err, kafkago.UnknownTopicOrPartition):
			return false, fmt.Errorf("%w: kafka topic %q does not exist (kafka.auto_create_topics is off)", brokers.ErrUnroutable, topic)
		case fatalGroupError(err):
			return false, fmt.Errorf("kafka: subscribe to %q: %w", topic, err)
		}
		if attempt == 0 { // one warning, not one per attempt
			s.log.Warn("kafka: subscription setup failed, retrying", "topic", topic, "err", err)
		} else {
			s.log.Debug("kafka: subscription setup failed, retrying", "topic", topic, "attempt", attempt+1, "err", err)
		}
		if !wait(ctx, backoff(attempt+1, s.cfg.ReadBackoffMin, s.cfg.ReadBackoffMax)) {
			return false, nil
		}
	}
}

// consumeGroup runs a consumer group member: each generation's partitions are
// consumed until the generation ends (rebalance, lost coordinator) or the
// subscription does. A topic missing at Subscribe is an error (unless
// AutoCreateTopics creates it); one that goes missing later (the broker came
// back empty, the topic was deleted) is waited for: recreated at once with
// AutoCreateTopics, consumed again once someone creates it otherwise.
func (s *Subscriber) consumeGroup(ctx context.Context, topic string, h brokers.Handler, sc brokers.SubscribeConfig) error {
	group := sc.Group
	if group == "" {
		group = DefaultGroup(topic)
	}
	log := s.log.With("topic", topic, "group", group)
	ok, err := s.setup(ctx, topic, func(ctx context.Context) error {
		a := newAdmin(&s.cfg, s.sec, topic)
		defer a.close()
		_, err := a.ensureTopic(ctx, topic, s.cfg.AutoCreateTopics, s.cfg.Partitions, 0)
		return err
	})
	if !ok {
		return err
	}
	w := newWorkers(s, sc.Concurrency, h, ctx, s.newDeadLetters(topic, group, sc))
	defer w.close()
	for {
		gone, err := s.runGroup(ctx, topic, group, w, sc, log)
		if !gone || err != nil {
			return err
		}
		if s.cfg.AutoCreateTopics {
			log.Warn("kafka: topic gone from the broker (restarted empty or deleted); recreating it (auto_create_topics)")
		} else {
			log.Warn("kafka: topic gone from the broker (restarted empty or deleted); waiting for it to be created again (auto_create_topics is off)")
		}
		if !s.awaitTopic(ctx, topic) {
			return nil
		}
		log.Info("kafka: topic back, rejoining the consumer group")
	}
}

// awaitTopic waits until topic exists again, creating it when
// AutoCreateTopics; false when ctx ended first.
func (s *Subscriber) awaitTopic(ctx context.Context, topic string) bool {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout+s.cfg.WriteTimeout)
		a := newAdmin(&s.cfg, s.sec, topic)
		_, err := a.ensureTopic(actx, topic, s.cfg.AutoCreateTopics, s.cfg.Partitions, 0)
		a.close()
		cancel()
		if err == nil {
			return true
		}
		s.log.Debug("kafka: topic still missing", "topic", topic, "attempt", attempt, "err", err)
		if !wait(ctx, backoff(attempt, s.cfg.JoinGroupBackoff, max(s.cfg.JoinGroupBackoff, time.Second))) {
			return false
		}
	}
}

// runGroup is one membership of the consumer group. It returns gone when a
// generation finds the topic missing: kafka-go would otherwise join
// generation after generation with nothing assigned, thousands a second.
func (s *Subscriber) runGroup(ctx context.Context, topic, group string, w *workers, sc brokers.SubscribeConfig, log *slog.Logger) (gone bool, _ error) {
	cg, err := kafkago.NewConsumerGroup(kafkago.ConsumerGroupConfig{
		ID:                    group,
		Brokers:               s.cfg.Brokers,
		Dialer:                s.dialer,
		Topics:                []string{topic},
		HeartbeatInterval:     s.cfg.HeartbeatInterval,
		SessionTimeout:        s.cfg.SessionTimeout,
		RebalanceTimeout:      s.cfg.RebalanceTimeout,
		JoinGroupBackoff:      s.cfg.JoinGroupBackoff,
		WatchPartitionChanges: true,
		StartOffset:           kafkago.FirstOffset,
		Logger:                kafkaLogger(log, "kafka-go.group"),
		ErrorLogger:           kafkaLogger(log, "kafka-go.group"),
	})
	if err != nil {
		return false, fmt.Errorf("kafka: subscribe to %q: %w", topic, err)
	}
	// Closing the group ends the current generation, whose goroutines commit
	// and exit, then leaves the group; only then may the workers go (the
	// caller closes them). The partition goroutines watch only the
	// generation, never ctx: were they to end it themselves, kafka-go could
	// start joining a next generation that Close then waits for.
	defer func() { _ = cg.Close() }()
	failures := 0 // joins failed in a row: one warning per streak, not one per attempt
	for {
		gen, err := cg.Next(ctx)
		switch {
		case err == nil:
		case ctx.Err() != nil, errors.Is(err, kafkago.ErrGroupClosed):
			return false, nil
		case fatalGroupError(err):
			return false, fmt.Errorf("kafka: consumer group %q: %w", group, err)
		default:
			// kafka-go backs off and rejoins by itself.
			if failures++; failures == 1 {
				log.Warn("kafka: consumer group join failed, retrying", "err", err)
			} else {
				log.Debug("kafka: consumer group join failed, retrying", "err", err, "failures", failures)
			}
			continue
		}
		if failures > 0 {
			log.Info("kafka: consumer group joined again", "failures", failures)
			failures = 0
		}
		assigned := gen.Assignments[topic]
		if len(assigned) == 0 {
			// More members than partitions, or no topic at all.
			exists, err := topicExists(ctx, &s.cfg, s.sec, topic)
			if err == nil && !exists {
				return true, nil
			}
		}
		log.Debug("kafka: generation started", "generation", gen.ID, "partitions", len(assigned))
		marks := newOffsets()
		running := new(sync.WaitGroup) // partition readers and their records in hand
		running.Add(len(assigned))
		for _, a := range assigned {
			p := &partition{
				sub: s, topic: topic, id: a.ID, offset: a.Offset,
				workers: w, mark: marks.mark, running: running,
				log: log.With("partition", a.ID),
			}
			gen.Start(func(gctx context.Context) {
				defer running.Done()
				p.run(gctx)
			})
		}
		gen.Start(func(gctx context.Context) {
			commitLoop(gctx, s.cfg.CommitInterval, marks, running, func(o map[int]int64) error {
				return gen.CommitOffsets(map[string]map[int]int64{topic: o})
			}, log)
		})
		// Every assigned partition starts at a known position: its committed
		// offset, or the first offset when the group never committed one, so
		// a message published from now on will be read.
		sc.Ready()
	}
}
