package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/syncgate/syncgate/brokers"
)

// inboxProbeInterval is how often a reply inbox asks the broker whether its
// topic is still the one it reads: how quickly Ready turns false when the
// broker goes away, and how quickly a lost topic is recreated.
const inboxProbeInterval = time.Second

// consumeInbox consumes every partition of a node's reply topic. There is no
// group protocol (no join, no rebalance, no wait for a dead predecessor's
// session to expire): the node owns the topic by its name. Offsets are still
// committed, as "simple" commits under the group id, so a restarted node
// resumes where it stopped and reads the replies that arrived meanwhile.
//
// Ready is called once the topic exists and every partition has an absolute
// start: the committed offset, or the first offset when none was committed.
// A reply produced at any time after the topic was created, before or after
// Ready, is therefore delivered.
//
// The inbox then watches its topic (see inboxRun.watch): when the broker
// comes back without it (an empty restart, a deleted topic), it recreates
// the topic and reads it again from its beginning, without the node
// restarting.
func (s *Subscriber) consumeInbox(ctx context.Context, topic string, h brokers.Handler, sc brokers.SubscribeConfig) error {
	group := sc.Group
	if group == "" {
		group = topic
	}
	log := s.log.With("topic", topic, "group", group, "inbox", true)
	health := newInboxHealth(log)
	defer s.track(health)()

	// The topic must exist before the lock group can be joined (its
	// members subscribe to it); the offsets are read once the lock is ours,
	// after a predecessor's last commit.
	if _, err := s.positionInbox(ctx, topic, group, health); err != nil || ctx.Err() != nil {
		return err
	}
	lock, lockLost, err := s.lockInbox(ctx, topic, log)
	if err != nil || lock == nil {
		return err
	}
	defer lock.release()

	// No dead-lettering: a reply the gateway's handler refuses is retried
	// (it refuses only while stopping).
	w := newWorkers(s, sc.Concurrency, h, ctx, nil)
	defer w.close()
	for {
		start, err := s.positionInbox(ctx, topic, group, health)
		if err != nil || ctx.Err() != nil {
			return err
		}
		run := &inboxRun{sub: s, topic: topic, group: group, start: start, health: health, log: log}
		lost, err := run.serve(ctx, w, sc.Ready, lockLost)
		if !lost || err != nil {
			return err
		}
	}
}

// positionInbox creates the topic if needed and returns each partition's
// absolute start: its committed offset, or its first offset when none was
// committed or the committed one is beyond the topic's end (the topic was
// recreated since: its old offsets mean nothing). It retries until it
// succeeds, fails for good, or ctx ends (nil, nil then).
func (s *Subscriber) positionInbox(ctx context.Context, topic, group string, health *inboxHealth) (map[int]int64, error) {
	for attempt := 1; ; attempt++ {
		actx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout+s.cfg.WriteTimeout)
		start, err := s.inboxStart(actx, topic, group)
		cancel()
		switch {
		case err == nil:
			return start, nil
		case ctx.Err() != nil:
			return nil, nil
		case fatalGroupError(err):
			return nil, fmt.Errorf("kafka: subscribe to %q: %w", topic, err)
		}
		health.down(err)
		s.log.Debug("kafka: positioning reply inbox failed, retrying", "topic", topic, "attempt", attempt, "err", err)
		if !wait(ctx, backoff(attempt, s.cfg.ReadBackoffMin, s.cfg.ReadBackoffMax)) {
			return nil, nil
		}
	}
}

func (s *Subscriber) inboxStart(ctx context.Context, topic, group string) (map[int]int64, error) {
	a := newAdmin(&s.cfg, s.sec, topic)
	defer a.close()
	ids, err := a.ensureTopic(ctx, topic, true, s.cfg.InboxPartitions, s.cfg.InboxRetention)
	if err != nil {
		return nil, err
	}
	first, last, err := a.bounds(ctx, topic, ids)
	if err != nil {
		return nil, err
	}
	committed, err := a.committed(ctx, group, topic, ids, -1)
	if err != nil {
		return nil, err
	}
	start := make(map[int]int64, len(ids))
	for _, p := range ids {
		c := committed[p]
		if c < first[p] || c > last[p] {
			c = first[p]
		}
		start[p] = c
	}
	return start, nil
}

// inboxRun reads one incarnation of the reply topic: from positioning until
// the subscription ends or the topic is found lost.
type inboxRun struct {
	sub    *Subscriber
	topic  string
	group  string
	start  map[int]int64
	health *inboxHealth
	log    *slog.Logger

	parts   []*partition
	discard atomic.Bool // the topic is lost: never commit its offsets

	mu        sync.Mutex
	committed map[int]int64 // what this run committed last, per partition
}

// serve reads the topic until ctx ends (false), the topic is lost (true:
// position again) or the lock is (the error from lockLost).
func (r *inboxRun) serve(ctx context.Context, w *workers, ready func(), lockLost <-chan error) (bool, error) {
	s := r.sub
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	marks := newOffsets()
	running := new(sync.WaitGroup) // partition readers and their records in hand
	for _, id := range slices.Sorted(maps.Keys(r.start)) {
		p := &partition{
			sub: s, topic: r.topic, id: id, offset: r.start[id],
			workers: w, mark: marks.mark, running: running, quiet: true,
			log: r.log.With("partition", id),
		}
		p.pos.Store(r.start[id])
		r.parts = append(r.parts, p)
	}
	running.Add(len(r.parts))
	for _, p := range r.parts {
		go func() {
			defer running.Done()
			p.run(rctx)
		}()
	}
	a := newAdmin(&s.cfg, s.sec, r.topic)
	defer a.close()
	committed := make(chan struct{})
	go func() {
		defer close(committed)
		commitLoop(rctx, s.cfg.CommitInterval, marks, running, func(o map[int]int64) error {
			return r.commit(ctx, a, o)
		}, r.log)
	}()
	r.health.up()
	ready()
	lost, err := r.watch(ctx, lockLost)
	if lost || err != nil {
		r.discard.Store(true)
	}
	cancel()
	<-committed
	return lost, err
}

var (
	// errCommitDeferred: the inbox is not serving; its offsets wait.
	errCommitDeferred = errors.New("kafka: reply inbox not serving, commit deferred")
	// errCommitDiscarded: the offsets belong to a lost topic; they are
	// dropped.
	errCommitDiscarded = errors.New("kafka: reply topic lost, offsets dropped")
)

// commit stores the run's offsets, unless the topic is lost (they belong
// to the old topic: committed to a recreated one, they would skip its
// first replies) or the broker has not been checked since it was last
// unreachable (it may have come back empty).
func (r *inboxRun) commit(ctx context.Context, a *admin, o map[int]int64) error {
	if r.discard.Load() {
		return errCommitDiscarded
	}
	if !r.health.ok() {
		return errCommitDeferred
	}
	// The last commit runs after ctx ended: give it its own deadline.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), r.sub.cfg.WriteTimeout)
	defer cancel()
	if err := a.commit(cctx, r.group, r.topic, o); err != nil {
		return err
	}
	r.mu.Lock()
	if r.committed == nil {
		r.committed = make(map[int]int64, len(o))
	}
	for p, n := range o {
		r.committed[p] = max(r.committed[p], n)
	}
	r.mu.Unlock()
	return nil
}

// watch probes the broker every inboxProbeInterval until ctx ends (false),
// the topic is lost (true) or the lock is (its error). A probe that fails
// marks the inbox down; one that finds the topic as this run left it marks
// it up.
func (r *inboxRun) watch(ctx context.Context, lockLost <-chan error) (bool, error) {
	tick := time.NewTicker(inboxProbeInterval)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return false, nil
		case err := <-lockLost:
			r.log.Error("kafka: another process took this reply topic; stopping", "err", err)
			return false, err
		case <-tick.C:
		}
		r.mu.Lock()
		committed := maps.Clone(r.committed) // before the probe: the broker holds at least this
		r.mu.Unlock()
		pctx, cancel := context.WithTimeout(ctx, r.sub.cfg.DialTimeout+r.sub.cfg.WriteTimeout)
		reason, err := r.probe(pctx, committed)
		cancel()
		switch {
		case ctx.Err() != nil:
			return false, nil
		case err != nil:
			r.health.down(err)
		case reason != "":
			r.health.lost(reason)
			return true, nil
		default:
			r.health.up()
		}
	}
}

// probe asks the broker about the topic with a fresh connection (cached
// metadata would still show a topic the broker no longer has) and returns
// why the topic is lost, or "" when it is as this run left it.
func (r *inboxRun) probe(ctx context.Context, committed map[int]int64) (string, error) {
	positions := make(map[int]int64, len(r.parts))
	for _, p := range r.parts {
		positions[p.id] = p.pos.Load()
	}
	a := newAdmin(&r.sub.cfg, r.sub.sec, r.topic)
	defer a.close()
	ids, err := a.partitions(ctx, r.topic)
	if errors.Is(err, kafkago.UnknownTopicOrPartition) {
		return "the broker has no topic " + r.topic, nil
	}
	if err != nil {
		return "", err
	}
	if !slices.Equal(ids, slices.Sorted(maps.Keys(r.start))) {
		return fmt.Sprintf("the topic's partitions changed from %d to %d", len(r.start), len(ids)), nil
	}
	_, last, err := a.bounds(ctx, r.topic, ids)
	if err != nil {
		return "", err
	}
	for _, p := range r.parts {
		// A reader whose next offset is beyond the partition's end would
		// wait there for ever (kafka-go retries "offset out of range"
		// without end): the log it read is gone. (Positions are read
		// before the end offsets, or a record fetched in between would
		// look like one beyond the end.)
		if pos := positions[p.id]; pos > last[p.id] {
			return fmt.Sprintf("partition %d ends at offset %d, before the inbox's position %d", p.id, last[p.id], pos), nil
		}
	}
	if len(committed) == 0 {
		return "", nil
	}
	now, err := a.committed(ctx, r.group, r.topic, ids, -1)
	if err != nil {
		return "", err
	}
	for p, c := range committed {
		if now[p] < c {
			return fmt.Sprintf("the committed offset of partition %d went back from %d to %d", p, c, now[p]), nil
		}
	}
	return "", nil
}
