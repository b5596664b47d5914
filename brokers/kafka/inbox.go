package kafka

import (
	"context"
	"sync"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/syncgate/syncgate/brokers"
)

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
func (s *Subscriber) consumeInbox(ctx context.Context, topic string, h brokers.Handler, sc brokers.SubscribeConfig) error {
	group := sc.Group
	if group == "" {
		group = topic
	}
	log := s.log.With("topic", topic, "group", group, "inbox", true)
	a := newAdmin(&s.cfg, s.sec, topic)
	defer a.close()

	var start map[int]int64
	ok, err := s.setup(ctx, topic, func(ctx context.Context) error {
		ids, err := a.ensureTopic(ctx, topic, true, s.cfg.InboxPartitions, s.cfg.InboxRetention)
		if err != nil {
			return err
		}
		start, err = a.committed(ctx, group, topic, ids, kafkago.FirstOffset)
		return err
	})
	if !ok {
		return err
	}

	w := newWorkers(s, sc.Concurrency, h, ctx)
	defer w.close()
	marks := newOffsets()
	running := new(sync.WaitGroup) // partition readers and their records in hand
	running.Add(len(start))
	for id, offset := range start {
		p := &partition{
			sub: s, topic: topic, id: id, offset: offset,
			workers: w, mark: marks.mark, running: running,
			log: log.With("partition", id),
		}
		go func() {
			defer running.Done()
			p.run(ctx)
		}()
	}
	sc.Ready()
	commitLoop(ctx, s.cfg.CommitInterval, marks, running, func(o map[int]int64) error {
		// The last commit runs after ctx ended: give it its own deadline.
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.cfg.WriteTimeout)
		defer cancel()
		return a.commit(cctx, group, topic, o)
	}, log)
	return nil
}
