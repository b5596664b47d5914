package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	produceAPI "github.com/segmentio/kafka-go/protocol/produce"

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
//
// A lane serves a whole topic, not one partition: one round sends the
// pending records of every partition, one produce request per partition
// leader (one in all when a broker leads them all). Per-partition lanes
// sent as many requests as the topic has partitions for the same records
// (at 64 callers over 4 partitions, 3 records a request instead of 10), and
// the broker's cost is per request far more than per record. A partition's
// records are all in one round, each round waits for the last, so a
// partition's order holds; the price is that a slow leader holds back the
// topic's other partitions for a round.

// lane sends the records of one topic, one round at a time, in publish
// order per partition.
type lane struct {
	p     *Publisher
	topic string

	mu      sync.Mutex
	pending []*record
	busy    bool // a goroutine is sending
}

// record is one published message on its way.
type record struct {
	ctx       context.Context // the Publish call's; ended: do not send
	partition int
	key       []byte
	value     []byte
	headers   []kafkago.Header
	size      int
	done      chan error // buffered; receives the outcome once
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
		// The values are copied into one buffer that the headers slice:
		// one allocation rather than one per header.
		n := 0
		for _, v := range m.Headers {
			n += len(v)
		}
		buf := make([]byte, 0, n)
		r.headers = make([]kafkago.Header, 0, len(m.Headers))
		for k, v := range m.Headers {
			// A value of several lines is a repeated header (see
			// brokers.Message): one record header per line, in order.
			for line := range strings.SplitSeq(v, "\n") {
				start := len(buf)
				buf = append(buf, line...)
				r.headers = append(r.headers, kafkago.Header{Key: k, Value: buf[start:len(buf):len(buf)]})
				r.size += len(k) + len(line)
			}
		}
		// Stable: the lines of one key keep their order.
		slices.SortStableFunc(r.headers, func(a, b kafkago.Header) int { return strings.Compare(a.Key, b.Key) })
	}
	return r
}

func (p *Publisher) lane(topic string) *lane {
	p.lanesMu.Lock()
	defer p.lanesMu.Unlock()
	l := p.lanes[topic]
	if l == nil {
		l = &lane{p: p, topic: topic}
		p.lanes[topic] = l
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

// run sends rounds until nothing is pending.
func (l *lane) run() {
	defer l.p.sending.Done()
	if d := l.p.cfg.BatchTimeout; d > 0 {
		wait(l.p.stop, d) // optional linger before the first request
	}
	for {
		round := l.take()
		if round == nil {
			return
		}
		l.send(round)
	}
}

// batch is the records of one partition in one round, in publish order.
type batch struct {
	partition int
	records   []*record
	bytes     int
	full      bool // a record did not fit: later ones of the partition wait too
	// outcome of the last attempt
	err        error
	recordErrs map[int]error
}

// take removes the next round from pending: per partition up to BatchSize
// records and MaxMessageBytes bytes, leaving out records whose Publish gave
// up. A record that does not fit stays pending with every later record of
// its partition. It marks the lane idle and returns nil when nothing is
// left.
func (l *lane) take() []*batch {
	cfg := &l.p.cfg
	l.mu.Lock()
	defer l.mu.Unlock()
	var round []*batch
	find := func(partition int) *batch {
		for _, b := range round {
			if b.partition == partition {
				return b
			}
		}
		b := &batch{partition: partition}
		round = append(round, b)
		return b
	}
	kept := l.pending[:0]
	for _, r := range l.pending {
		if err := r.ctx.Err(); err != nil {
			r.done <- err // nobody reads it; never sent
			continue
		}
		b := find(r.partition)
		if !b.full && len(b.records) > 0 && (len(b.records) >= cfg.BatchSize || b.bytes+r.size > cfg.MaxMessageBytes) {
			b.full = true
		}
		if b.full {
			kept = append(kept, r)
			continue
		}
		b.records = append(b.records, r)
		b.bytes += r.size
	}
	clear(l.pending[len(kept):])
	l.pending = kept
	if len(l.pending) == 0 {
		l.pending = nil
	}
	// A partition whose records were all abandoned has an empty batch.
	round = slices.DeleteFunc(round, func(b *batch) bool { return len(b.records) == 0 })
	if round == nil {
		l.busy = false
	}
	return round
}

// send produces round, retrying the partitions whose failure a later
// attempt may not meet, and completes every record.
func (l *lane) send(round []*batch) {
	cfg := &l.p.cfg
	for attempt := 1; ; attempt++ {
		l.attempt(round)
		retry := round[:0:0]
		for _, b := range round {
			if b.err == nil || attempt >= cfg.MaxAttempts || !retriable(b.err) || l.p.stop.Err() != nil || abandoned(b.records) {
				for i, r := range b.records {
					e := b.err
					if re := b.recordErrs[i]; re != nil {
						e = re
					}
					r.done <- e
				}
				continue
			}
			retry = append(retry, b)
		}
		if len(retry) == 0 {
			return
		}
		round = retry
		l.p.log.Debug("kafka: produce failed, retrying", "topic", l.topic, "partitions", len(round),
			"attempt", attempt, "err", round[0].err)
		if !wait(l.p.stop, backoff(attempt, 50*time.Millisecond, 500*time.Millisecond)) {
			for _, b := range round {
				for _, r := range b.records {
					r.done <- b.err
				}
			}
			return
		}
		for _, b := range round {
			if errors.Is(b.err, kafkago.NotLeaderForPartition) || errors.Is(b.err, kafkago.LeaderNotAvailable) || stale(b.err) {
				// The leader moved: learn where now rather than at the
				// next periodic metadata refresh.
				l.p.refreshMetadata(l.topic)
				break
			}
		}
	}
}

// attempt sends round once, one produce request per partition leader, and
// sets each batch's outcome.
func (l *lane) attempt(round []*batch) {
	cfg := &l.p.cfg
	ctx, cancel := context.WithTimeout(l.p.stop, cfg.WriteTimeout)
	defer cancel()
	leaders, err := l.p.leaders(ctx, l.topic)
	if err != nil {
		for _, b := range round {
			b.err, b.recordErrs = err, nil
		}
		return
	}
	byLeader := make(map[int32][]*batch, 1)
	for _, b := range round {
		leader := int32(-1)
		if b.partition < len(leaders) {
			leader = leaders[b.partition]
		}
		byLeader[leader] = append(byLeader[leader], b)
	}
	if len(byLeader) == 1 {
		for leader, bs := range byLeader {
			l.produce(ctx, leader, bs)
		}
		return
	}
	var wg sync.WaitGroup
	for leader, bs := range byLeader {
		wg.Go(func() { l.produce(ctx, leader, bs) })
	}
	wg.Wait()
}

// produce sends the batches led by one broker in one produce request.
func (l *lane) produce(ctx context.Context, leader int32, bs []*batch) {
	if leader < 0 {
		for _, b := range bs {
			b.err, b.recordErrs = kafkago.LeaderNotAvailable, nil
		}
		return
	}
	cfg := &l.p.cfg
	now := time.Now()
	parts := make([]produceAPI.RequestPartition, len(bs))
	for i, b := range bs {
		records := make([]kafkago.Record, len(b.records))
		for j, r := range b.records {
			records[j] = kafkago.Record{Time: now, Key: bytesOrNil(r.key), Value: bytesOrNil(r.value), Headers: r.headers}
		}
		parts[i] = produceAPI.RequestPartition{
			Partition: int32(b.partition),
			RecordSet: protocol.RecordSet{Records: kafkago.NewRecordReader(records...)},
		}
	}
	res, err := l.p.transport.RoundTrip(ctx, l.p.addr, &produceAPI.Request{
		Acks:    int16(cfg.requiredAcks()),
		Timeout: int32(cfg.WriteTimeout / time.Millisecond),
		Topics:  []produceAPI.RequestTopic{{Topic: l.topic, Partitions: parts}},
	})
	for _, b := range bs {
		b.err, b.recordErrs = err, nil
	}
	if err != nil {
		return
	}
	answered := make(map[int32]produceAPI.ResponsePartition, len(bs))
	for _, t := range res.(*produceAPI.Response).Topics {
		if t.Topic != l.topic {
			continue
		}
		for _, rp := range t.Partitions {
			answered[rp.Partition] = rp
		}
	}
	for _, b := range bs {
		rp, ok := answered[int32(b.partition)]
		if !ok {
			b.err = fmt.Errorf("kafka: produce response without partition %d: %w", b.partition, io.ErrUnexpectedEOF)
			continue
		}
		if rp.ErrorCode != 0 {
			b.err = kafkago.Error(rp.ErrorCode)
			if rp.ErrorMessage != "" {
				b.err = fmt.Errorf("%w: %s", b.err, rp.ErrorMessage)
			}
		}
		if len(rp.RecordErrors) > 0 {
			b.recordErrs = make(map[int]error, len(rp.RecordErrors))
			for _, re := range rp.RecordErrors {
				b.recordErrs[int(re.BatchIndex)] = errors.New(re.BatchIndexErrorMessage)
			}
		}
	}
}

// stale reports a produce request the transport refused to route: its
// cached metadata names no leader for a partition, or the leaders of one
// request's partitions differ (it refreshed between the lane's look-up and
// the request). Newer metadata cures both.
func stale(err error) bool {
	var pe *produceAPI.Error
	return errors.As(err, &pe) && !errors.Is(err, protocol.ErrNoTopic)
}

func bytesOrNil(b []byte) kafkago.Bytes {
	if b == nil {
		return nil
	}
	return kafkago.NewBytes(b)
}

// abandoned reports whether every publisher of records gave up waiting.
func abandoned(records []*record) bool {
	for _, r := range records {
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
	if stale(err) {
		return true
	}
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
