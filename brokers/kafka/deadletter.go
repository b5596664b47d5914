package kafka

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"
	"unicode/utf8"

	kafkago "github.com/segmentio/kafka-go"

	"github.com/syncgate/syncgate/brokers"
)

// Headers a dead letter carries besides the original record's, named and
// encoded as Spring Kafka's DeadLetterPublishingRecoverer writes them, so
// that tools built for Spring's dead-letter topics read ours: strings in
// UTF-8, the partition a big-endian int32, offset and timestamp big-endian
// int64s.
const (
	HeaderDLTOriginalTopic         = "kafka_dlt-original-topic"
	HeaderDLTOriginalPartition     = "kafka_dlt-original-partition"
	HeaderDLTOriginalOffset        = "kafka_dlt-original-offset"
	HeaderDLTOriginalTimestamp     = "kafka_dlt-original-timestamp"
	HeaderDLTOriginalTimestampType = "kafka_dlt-original-timestamp-type"
	HeaderDLTOriginalConsumerGroup = "kafka_dlt-original-consumer-group"
	HeaderDLTExceptionFQCN         = "kafka_dlt-exception-fqcn"
	HeaderDLTExceptionMessage      = "kafka_dlt-exception-message"
	// HeaderDLTAttempts is syncgate's own: how many times the handler
	// failed on the record (a decimal number).
	HeaderDLTAttempts = "x-syncgate-attempts"
)

// maxDLTMessage bounds the error text a dead letter carries, so that a
// record near max_message_bytes still fits with it.
const maxDLTMessage = 1024

// DeadLetterTopic returns the dead-letter topic of the records of topic
// given up on under cfg: cfg.DeadLetterTopic, or topic plus ".dlt".
func DeadLetterTopic(cfg Config, topic string) string {
	if cfg.DeadLetterTopic != "" {
		return cfg.DeadLetterTopic
	}
	return topic + ".dlt"
}

// deadLetters sends the records a service subscription gives up on.
type deadLetters struct {
	sub    *Subscriber
	topic  string
	group  string
	dest   string
	max    int
	notify func(context.Context, brokers.Message, error)

	mu     sync.Mutex
	exists bool // dest was created or found
}

func (s *Subscriber) newDeadLetters(topic, group string, sc brokers.SubscribeConfig) *deadLetters {
	if s.cfg.MaxDeliveries < 0 {
		return nil
	}
	return &deadLetters{sub: s, topic: topic, group: group, dest: DeadLetterTopic(s.cfg, topic),
		max: s.cfg.MaxDeliveries, notify: sc.DeadLetter}
}

// give sends j to the dead-letter topic, retrying with backoff until it is
// there (a record is never dropped, and its offset is not committed before
// it is there), then calls the DeadLetter callback. False when the
// partition stopped being ours first: the record stays uncommitted and its
// next owner handles it.
func (d *deadLetters) give(hctx context.Context, j job, cause error, attempts int) bool {
	cfg := &d.sub.cfg
	stop := j.p.stop
	headers := d.headers(j, cause, attempts)
	log := j.p.log.With("offset", j.offset, "dead_letter_topic", d.dest, "attempts", attempts)
	for try := 1; ; try++ {
		err := d.send(stop, j, headers)
		if err == nil {
			break
		}
		if stop.Err() != nil {
			return false
		}
		if try == 1 {
			log.Warn("kafka: dead-letter publish failed, retrying; the record stays uncommitted", "err", err)
		} else {
			log.Debug("kafka: dead-letter publish failed", "err", err, "tries", try)
		}
		if !wait(stop, backoff(try, cfg.RetryBackoffMin, cfg.RetryBackoffMax)) {
			return false
		}
	}
	log.Warn("kafka: handler kept failing, record dead-lettered", "err", cause)
	d.notify(hctx, j.message(), cause)
	return true
}

// send makes sure the topic exists, then produces one dead letter.
func (d *deadLetters) send(ctx context.Context, j job, headers []kafkago.Header) error {
	cfg := &d.sub.cfg
	ctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout+cfg.WriteTimeout)
	defer cancel()
	if err := d.ensure(ctx); err != nil {
		return err
	}
	pub, err := d.sub.deadLetterPublisher()
	if err != nil {
		return err
	}
	err = pub.publishRecord(ctx, d.dest, j.p.id, j.km.Key, j.km.Value, headers)
	if errors.Is(err, brokers.ErrUnroutable) {
		d.mu.Lock()
		d.exists = false // deleted meanwhile, or the broker came back empty
		d.mu.Unlock()
	}
	return err
}

// ensure creates the dead-letter topic, with as many partitions as the
// original, unless it is known to exist.
func (d *deadLetters) ensure(ctx context.Context) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.exists {
		return nil
	}
	// One admin per topic: an admin's metadata covers one.
	src := newAdmin(&d.sub.cfg, d.sub.sec, d.topic)
	defer src.close()
	ids, err := src.partitions(ctx, d.topic)
	if err != nil {
		return fmt.Errorf("partitions of %q: %w", d.topic, err)
	}
	dst := newAdmin(&d.sub.cfg, d.sub.sec, d.dest)
	defer dst.close()
	if _, err := dst.ensureTopic(ctx, d.dest, true, len(ids), 0); err != nil {
		return fmt.Errorf("create dead-letter topic %q: %w", d.dest, err)
	}
	d.exists = true
	return nil
}

// headers returns the original record's headers followed by the
// dead-letter ones.
func (d *deadLetters) headers(j job, cause error, attempts int) []kafkago.Header {
	msg := cause.Error()
	if len(msg) > maxDLTMessage {
		cut := maxDLTMessage
		for cut > 0 && !utf8.RuneStart(msg[cut]) {
			cut--
		}
		msg = msg[:cut] + "…"
	}
	tsType := "CreateTime"
	ts := j.km.Time
	if ts.IsZero() {
		ts = time.Now()
	}
	h := slices.Clone(j.km.Headers)
	return append(h,
		kafkago.Header{Key: HeaderDLTOriginalTopic, Value: []byte(j.p.topic)},
		kafkago.Header{Key: HeaderDLTOriginalPartition, Value: binary.BigEndian.AppendUint32(nil, uint32(int32(j.p.id)))},
		kafkago.Header{Key: HeaderDLTOriginalOffset, Value: binary.BigEndian.AppendUint64(nil, uint64(j.offset))},
		kafkago.Header{Key: HeaderDLTOriginalTimestamp, Value: binary.BigEndian.AppendUint64(nil, uint64(ts.UnixMilli()))},
		kafkago.Header{Key: HeaderDLTOriginalTimestampType, Value: []byte(tsType)},
		kafkago.Header{Key: HeaderDLTOriginalConsumerGroup, Value: []byte(d.group)},
		kafkago.Header{Key: HeaderDLTExceptionFQCN, Value: []byte(fmt.Sprintf("%T", cause))},
		kafkago.Header{Key: HeaderDLTExceptionMessage, Value: []byte(msg)},
		kafkago.Header{Key: HeaderDLTAttempts, Value: []byte(strconv.Itoa(attempts))},
	)
}

// deadLetterPublisher returns the Subscriber's publisher of dead letters,
// made at first use and closed by Close.
func (s *Subscriber) deadLetterPublisher() (*Publisher, error) {
	s.pubMu.Lock()
	defer s.pubMu.Unlock()
	if s.pub == nil {
		p, err := NewPublisher(s.cfg)
		if err != nil {
			return nil, err
		}
		s.pub = p
	}
	return s.pub, nil
}
