package kafka

import (
	"context"
	"errors"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/syncgate/syncgate/brokers"
)

// Why not kafka-go's Writer: it closes a batch when BatchTimeout passes and
// writes a partition's batches one after the other. With a small timeout
// (needed for request/reply latency) and a broker slower than that timeout
// (any remote cluster with acks=all), each request carries only one timeout's
// worth of records while taking longer than that to complete, so the queue
// of batches grows without bound under load. A lane instead sends whatever
// accumulated while its previous request was in flight: no wait when idle,
// batches as large as the load needs when busy.

type laneKey struct {
	topic     string
	partition int
}

// lane sends the records of one topic partition, one produce request at a
// time, in publish order.
type lane struct {
	p   *Publisher
	key laneKey

	mu      sync.Mutex
	pending []*record
	busy    bool // a goroutine is sending
}

// record is one published message on its way.
type record struct {
	ctx     context.Context // the Publish call's; ended: do not send
	key     []byte
	value   []byte
	headers []kafkago.Header
	size    int
	done    chan error // buffered; receives the outcome once
}

// newRecord copies m: the caller may reuse it as soon as Publish returns.
func newRecord(ctx context.Context, m brokers.Message) *record {
	r := &record{ctx: ctx, done: make(chan error, 1)}
	if m.Key != "" {
		r.key = []byte(m.Key)
	}
	if m.Body != nil {
		r.value = slices.Clone(m.Body)
	}
	r.size = len(r.key) + len(r.value)
	if len(m.Headers) > 0 {
		r.headers = make([]kafkago.Header, 0, len(m.Headers))
		for k, v := range m.Headers {
			// A value of several lines is a repeated header (see
			// brokers.Message): one record header per line, in order.
			for line := range strings.SplitSeq(v, "\n") {
				r.headers = append(r.headers, kafkago.Header{Key: k, Value: []byte(line)})
				r.size += len(k) + len(line)
			}
		}
		// Stable: the lines of one key keep their order.
		slices.SortStableFunc(r.headers, func(a, b kafkago.Header) int { return strings.Compare(a.Key, b.Key) })
	}
	return r
}

func (p *Publisher) lane(topic string, partition int) *lane {
	k := laneKey{topic, partition}
	p.lanesMu.Lock()
	defer p.lanesMu.Unlock()
	l := p.lanes[k]
	if l == nil {
		l = &lane{p: p, key: k}
		p.lanes[k] = l
	}
	return l
}

// enqueue adds r and starts a sender if the lane is idle. Called by Publish
// (inside p.inflight, so Close waits for the sender it starts).
func (l *lane) enqueue(r *record) {
	l.mu.Lock()
	l.pending = append(l.pending, r)
	start := !l.busy
	l.busy = true
	l.mu.Unlock()
	if start {
		l.p.sending.Add(1)
		go l.run()
	}
}

// run sends batches until nothing is pending.
func (l *lane) run() {
	defer l.p.sending.Done()
	if d := l.p.cfg.BatchTimeout; d > 0 {
		wait(l.p.stop, d) // optional linger before the first request
	}
	for {
		batch := l.take()
		if batch == nil {
			return
		}
		recordErrs, err := l.send(batch)
		for i, r := range batch {
			e := err
			if re := recordErrs[i]; re != nil {
				e = re
			}
			r.done <- e
		}
	}
}

// take removes the next batch from pending: up to BatchSize records and
// MaxMessageBytes bytes, leaving out records whose Publish gave up. It
// marks the lane idle and returns nil when nothing is left.
func (l *lane) take() []*record {
	cfg := &l.p.cfg
	l.mu.Lock()
	defer l.mu.Unlock()
	var batch []*record
	bytes, i := 0, 0
	for ; i < len(l.pending) && len(batch) < cfg.BatchSize; i++ {
		r := l.pending[i]
		if err := r.ctx.Err(); err != nil {
			r.done <- err // nobody reads it; never sent
			continue
		}
		if len(batch) > 0 && bytes+r.size > cfg.MaxMessageBytes {
			break
		}
		batch = append(batch, r)
		bytes += r.size
	}
	clear(l.pending[:i])
	l.pending = l.pending[i:]
	if len(l.pending) == 0 {
		l.pending = nil
	}
	if batch == nil {
		l.busy = false
	}
	return batch
}

// send produces batch, retrying what may succeed on a later attempt, and
// returns any per-record errors (by index) and the batch's error.
func (l *lane) send(batch []*record) (map[int]error, error) {
	cfg := &l.p.cfg
	for attempt := 1; ; attempt++ {
		now := time.Now()
		records := make([]kafkago.Record, len(batch))
		for i, r := range batch {
			records[i] = kafkago.Record{Time: now, Key: bytesOrNil(r.key), Value: bytesOrNil(r.value), Headers: r.headers}
		}
		ctx, cancel := context.WithTimeout(l.p.stop, cfg.WriteTimeout)
		res, err := l.p.client.Produce(ctx, &kafkago.ProduceRequest{
			Topic:        l.key.topic,
			Partition:    l.key.partition,
			RequiredAcks: cfg.requiredAcks(),
			Records:      kafkago.NewRecordReader(records...),
		})
		cancel()
		if err == nil && res != nil {
			if err = res.Error; err == nil {
				return res.RecordErrors, nil
			}
		}
		if attempt >= cfg.MaxAttempts || !retriable(err) || l.p.stop.Err() != nil || abandoned(batch) {
			return nil, err
		}
		l.p.log.Debug("kafka: produce failed, retrying", "topic", l.key.topic, "partition", l.key.partition,
			"records", len(batch), "attempt", attempt, "err", err)
		if !wait(l.p.stop, backoff(attempt, 50*time.Millisecond, 500*time.Millisecond)) {
			return nil, err
		}
		if errors.Is(err, kafkago.NotLeaderForPartition) || errors.Is(err, kafkago.LeaderNotAvailable) {
			// The leader moved: learn where now rather than at the next
			// periodic metadata refresh.
			l.p.refreshMetadata(l.key.topic)
		}
	}
}

func bytesOrNil(b []byte) kafkago.Bytes {
	if b == nil {
		return nil
	}
	return kafkago.NewBytes(b)
}

// abandoned reports whether every publisher of batch gave up waiting.
func abandoned(batch []*record) bool {
	for _, r := range batch {
		if r.ctx.Err() == nil {
			return false
		}
	}
	return true
}

// retriable reports errors a later attempt may not meet: broker-side
// conditions kafka-go marks temporary (no leader, not enough replicas,
// request timed out) and connection failures.
func retriable(err error) bool {
	var temp interface{ Temporary() bool }
	if errors.As(err, &temp) && temp.Temporary() {
		return true
	}
	var ne net.Error
	return errors.As(err, &ne) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// partitionList returns [0, n), shared between calls.
func partitionList(n int) []int {
	if l := partitionLists.Load(); l != nil && len(*l) >= n {
		return (*l)[:n]
	}
	l := make([]int, max(n, 256))
	for i := range l {
		l[i] = i
	}
	partitionLists.Store(&l)
	return l[:n]
}

var partitionLists atomic.Pointer[[]int]
