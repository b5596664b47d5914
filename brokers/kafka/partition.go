package kafka

import (
	"context"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/syncgate/syncgate/brokers"
)

// partition reads one topic partition from a given offset and hands each
// record to the subscription's workers. It commits in offset order: a
// record's offset is marked for commit only when it and every record before
// it in the partition were handled.
type partition struct {
	sub     *Subscriber
	topic   string
	id      int
	offset  int64 // first offset to read: absolute, or kafkago.FirstOffset
	workers *workers
	mark    func(partition int, next int64)
	// running counts this partition's records not yet handled; the last
	// commit of a generation or subscription waits for it.
	running *sync.WaitGroup
	log     *slog.Logger
	// quiet: fetch failures are logged at Debug only, because someone else
	// (the reply inbox's health) reports the outage once.
	quiet bool

	pos atomic.Int64 // the next offset to fetch, once known

	stop    context.Context // ends when the partition is no longer ours
	pending tracker
}

// run reads until stop ends. Records in hand then are not marked, so
// whoever owns the partition next receives them again.
func (p *partition) run(stop context.Context) {
	p.stop = stop
	cfg := &p.sub.cfg
	r := kafkago.NewReader(kafkago.ReaderConfig{
		Brokers:          cfg.Brokers,
		Topic:            p.topic,
		Partition:        p.id,
		Dialer:           p.sub.dialer,
		MinBytes:         1,
		MaxBytes:         cfg.MaxMessageBytes,
		MaxWait:          cfg.MaxWait,
		ReadBatchTimeout: cfg.MaxWait + cfg.WriteTimeout,
		ReadLagInterval:  -1,
		ReadBackoffMin:   cfg.ReadBackoffMin,
		ReadBackoffMax:   cfg.ReadBackoffMax,
		QueueCapacity:    64,
		Logger:           kafkaLogger(p.log, "kafka-go.reader"),
		ErrorLogger:      kafkaLogger(p.log, "kafka-go.reader"),
	})
	defer r.Close()
	if err := r.SetOffset(p.offset); err != nil {
		p.log.Error("kafka: positioning reader", "offset", p.offset, "err", err)
		return
	}
	for failures := 0; ; {
		km, err := r.FetchMessage(stop)
		if err != nil {
			if stop.Err() != nil {
				return
			}
			// The reader retries connections on its own and reports what it
			// cannot get past (authorization, unknown codec); keep asking.
			// One warning when fetching starts failing and one line when it
			// works again, not one per attempt.
			failures++
			switch {
			case failures == 1 && !p.quiet:
				p.log.Warn("kafka: fetch failing, retrying", "err", err)
			default:
				p.log.Debug("kafka: fetch failed", "err", err, "failures", failures)
			}
			if !wait(stop, backoff(failures, cfg.ReadBackoffMin, cfg.ReadBackoffMax)) {
				return
			}
			continue
		}
		if failures > 0 && !p.quiet {
			p.log.Info("kafka: fetching again", "failures", failures)
		}
		failures = 0
		p.pos.Store(km.Offset + 1)
		p.pending.add(km.Offset)
		p.running.Add(1)
		if !p.workers.dispatch(stop, job{p: p, offset: km.Offset, key: km.Key, km: km}) {
			p.running.Done()
			return
		}
	}
}

// handled is called by a worker once the handler accepted the record at
// offset.
func (p *partition) handled(offset int64) {
	if next, ok := p.pending.complete(offset); ok {
		p.mark(p.id, next)
	}
}

// job is one record on its way to a handler.
type job struct {
	p      *partition
	offset int64
	key    []byte
	km     kafkago.Message // as read: what each attempt and a dead letter get
}

// workers run a subscription's handler calls: Concurrency of them, each
// taking the records of the keys that hash to it, in order. Records of one
// key therefore never overtake each other, while records of different keys,
// even in one partition, are handled in parallel (a reply inbox, whose keys
// are all distinct correlation ids, uses every worker). A record without a
// key is ordered with the rest of its partition's keyless records.
type workers struct {
	sub     *Subscriber
	handler brokers.Handler
	hctx    context.Context // handler calls' context: the subscription's
	dead    *deadLetters    // nil: never give up on a record
	queues  []chan job
	wg      sync.WaitGroup
}

func newWorkers(s *Subscriber, n int, h brokers.Handler, hctx context.Context, dead *deadLetters) *workers {
	w := &workers{sub: s, handler: h, hctx: hctx, dead: dead, queues: make([]chan job, n)}
	for i := range w.queues {
		q := make(chan job, 16)
		w.queues[i] = q
		w.wg.Go(func() {
			for j := range q {
				if w.deliver(j) {
					j.p.handled(j.offset)
				}
				j.p.running.Done()
			}
		})
	}
	return w
}

// dispatch queues j on its key's worker; false when stop ended first.
func (w *workers) dispatch(stop context.Context, j job) bool {
	key := j.key
	if len(key) == 0 {
		key = []byte(j.p.topic + "/" + strconv.Itoa(j.p.id))
	}
	select {
	case w.queues[fnv1a(key)%uint64(len(w.queues))] <- j:
		return true
	case <-stop.Done():
		return false
	}
}

// close stops the workers once every dispatcher stopped dispatching.
func (w *workers) close() {
	for _, q := range w.queues {
		close(q)
	}
	w.wg.Wait()
}

// deliver hands j to the handler until it succeeds, or until it failed
// MaxDeliveries times and the record went to the dead-letter topic; false
// when its partition stopped being ours first (the record is then left
// uncommitted). Attempts are counted in this process: a record that moves
// to another member starts its count again there.
func (w *workers) deliver(j job) bool {
	cfg := &w.sub.cfg
	stop := j.p.stop
	for attempt := 1; stop.Err() == nil; attempt++ {
		// Each attempt gets its own copy: a handler's edits must not reach
		// the redelivery (nor the dead letter). Converting the record again
		// costs no more than copying a converted one.
		err := w.handler(w.hctx, j.message())
		if err == nil {
			return true
		}
		if stop.Err() != nil || w.hctx.Err() != nil {
			// Stopping: a failure now may be the handler seeing its
			// context end, not the record's fault.
			break
		}
		if w.dead != nil && attempt >= w.dead.max {
			return w.dead.give(w.hctx, j, err, attempt)
		}
		j.p.log.Warn("kafka: handler failed, redelivering", "offset", j.offset, "attempt", attempt, "err", err)
		if !wait(stop, backoff(attempt, cfg.RetryBackoffMin, cfg.RetryBackoffMax)) {
			break
		}
	}
	return false
}

// fnv1a is the 64-bit FNV-1a hash: stable across runs, so which keys share a
// worker is reproducible.
func fnv1a(b []byte) uint64 {
	h := uint64(14695981039346656037)
	for _, c := range b {
		h ^= uint64(c)
		h *= 1099511628211
	}
	return h
}

// message returns a copy of j's record as a brokers.Message.
func (j job) message() brokers.Message {
	m := fromKafka(j.km)
	if m.Body != nil {
		m.Body = append([]byte(nil), m.Body...)
	}
	return m
}

// fromKafka converts a record (its Body is km.Value, not a copy). A header key the record carries several
// times becomes one value, its values in record order joined by "\n" (the
// brokers.Message contract; newRecord splits it again).
func fromKafka(km kafkago.Message) brokers.Message {
	m := brokers.Message{Key: string(km.Key), Body: km.Value}
	if len(km.Headers) == 0 {
		return m
	}
	// Every value is a slice of one string: one allocation for all of
	// them rather than one per header (an envelope carries about ten).
	n := 0
	for _, h := range km.Headers {
		n += len(h.Value)
	}
	var b strings.Builder
	b.Grow(n)
	for _, h := range km.Headers {
		b.Write(h.Value)
	}
	all := b.String()
	m.Headers = make(map[string]string, len(km.Headers))
	off := 0
	for _, h := range km.Headers {
		v := all[off : off+len(h.Value)]
		off += len(h.Value)
		if prev, ok := m.Headers[h.Key]; ok {
			m.Headers[h.Key] = prev + "\n" + v
			continue
		}
		m.Headers[h.Key] = v
	}
	return m
}

// tracker finds the commit point of a partition whose records complete out
// of order: the offset after the longest handled prefix.
type tracker struct {
	mu      sync.Mutex
	pending []int64            // dispatched, in offset order
	done    map[int64]struct{} // handled, not yet at the head of pending
}

func (t *tracker) add(offset int64) {
	t.mu.Lock()
	t.pending = append(t.pending, offset)
	t.mu.Unlock()
}

// complete records offset as handled and returns the new commit point, if
// it moved.
func (t *tracker) complete(offset int64) (int64, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.done == nil {
		t.done = make(map[int64]struct{})
	}
	t.done[offset] = struct{}{}
	next, moved := int64(0), false
	for len(t.pending) > 0 {
		head := t.pending[0]
		if _, ok := t.done[head]; !ok {
			break
		}
		delete(t.done, head)
		t.pending = t.pending[1:]
		next, moved = head+1, true
	}
	if len(t.pending) == 0 {
		t.pending = nil // let the backing array go
	}
	return next, moved
}
