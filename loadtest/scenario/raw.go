package scenario

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	kafkago "github.com/segmentio/kafka-go"

	"github.com/syncgate/syncgate/brokers/envelope"
	natsb "github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/loadtest"
)

// Raw SDK request/reply loops on the broker the gateway uses in the same
// run: the floors of the kafka and rabbitmq scenarios. An op succeeds with
// status 200 once the reply carrying its correlation id (and its body) has
// come back, so the rows render like the HTTP ones.

// await waits for w's reply and checks that it echoes body. A context that
// ends first is an error, whether or not the reply raced it.
func await(ctx context.Context, w *correlation.Waiter, body []byte) (int, error) {
	select {
	case rep, ok := <-w.C():
		if !ok {
			return 0, fmt.Errorf("reply %s: registry closed", w.ID())
		}
		if string(rep.Body) != string(body) {
			return 0, fmt.Errorf("reply %s: body %q, want %q", w.ID(), rep.Body, body)
		}
		return 200, nil
	case <-ctx.Done():
		w.Cancel()
		return 0, fmt.Errorf("reply %s: %w", w.ID(), ctx.Err())
	}
}

func randomSuffix() string {
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// rawBody is a request body carrying its id, so that a reply to another
// request cannot pass for its own.
func rawBody(id string) []byte {
	return []byte(`{"order":42,"amount":"12.50","currency":"EUR","id":"` + id + `"}`)
}

// Kafka raw loop topics (single partition: the readers are partition
// readers, no consumer group). startKfake seeds them.
var (
	rawKafkaRequests = []string{"loadtest.raw.requests", "loadtest.raw.linger.requests"}
	rawKafkaReplies  = []string{"loadtest.raw.replies", "loadtest.raw.linger.replies"}
)

const (
	// rawCorrelationHeader carries the correlation id of a raw request and
	// of its reply.
	rawCorrelationHeader = "correlation-id"
)

// rawKafka is a kafka-go request/reply loop: a Writer publishing requests
// with a correlation header, a plain partition Reader as the service that
// answers each on the reply topic (a goroutine per request, at most 64),
// and a Reader of the reply topic handing each reply to its caller.
type rawKafka struct {
	reqW, repW *kafkago.Writer
	reqR, repR *kafkago.Reader
	mux        *correlation.Registry // hands each reply to the request waiting for its id
	cancel     context.CancelFunc
	bg         sync.WaitGroup
	seq        atomic.Uint64
	prefix     string
	reqTopic   string
	stray      atomic.Int64 // replies nobody waited for
}

// newRawKafka starts the loop on brokers. With batchSize 1 the Writers send
// every record at once, in a produce request of its own; otherwise a record
// waits up to linger (kafka-go's BatchTimeout) for batchSize others.
func newRawKafka(brokers []string, reqTopic, repTopic string, batchSize int, linger time.Duration) *rawKafka {
	writer := func() *kafkago.Writer {
		return &kafkago.Writer{
			Addr: kafkago.TCP(brokers...), Balancer: &kafkago.LeastBytes{},
			BatchTimeout: linger, BatchSize: batchSize, RequiredAcks: kafkago.RequireOne,
			Transport: &kafkago.Transport{},
		}
	}
	reader := func(topic string) *kafkago.Reader {
		return kafkago.NewReader(kafkago.ReaderConfig{
			Brokers: brokers, Topic: topic, MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 250 * time.Millisecond,
			ReadLagInterval: -1, ReadBackoffMin: 10 * time.Millisecond, ReadBackoffMax: 100 * time.Millisecond,
		})
	}
	ctx, cancel := context.WithCancel(context.Background())
	k := &rawKafka{
		reqW: writer(), repW: writer(), reqR: reader(reqTopic), repR: reader(repTopic),
		mux: correlation.NewRegistry(), cancel: cancel, prefix: randomSuffix(),
	}
	// The service: read a request, answer it from its own goroutine.
	k.bg.Go(func() {
		sem := make(chan struct{}, Connections)
		var replies sync.WaitGroup
		defer replies.Wait()
		for {
			m, err := k.reqR.ReadMessage(ctx)
			if err != nil {
				return
			}
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				return
			}
			replies.Go(func() {
				defer func() { <-sem }()
				_ = k.repW.WriteMessages(ctx, kafkago.Message{Topic: repTopic, Headers: m.Headers, Value: m.Value})
			})
		}
	})
	// The caller's reply consumer.
	k.bg.Go(func() {
		for {
			m, err := k.repR.ReadMessage(ctx)
			if err != nil {
				return
			}
			if !k.mux.Deliver(envelope.Reply{CorrelationID: header(m.Headers, rawCorrelationHeader), Body: m.Value}) {
				k.stray.Add(1)
			}
		}
	})
	k.reqTopic = reqTopic
	return k
}

func header(hs []kafkago.Header, key string) string {
	for _, h := range hs {
		if h.Key == key {
			return string(h.Value)
		}
	}
	return ""
}

// op publishes one request and waits for its reply.
func (k *rawKafka) op() loadtest.Op {
	return func(ctx context.Context) (int, error) {
		id := k.prefix + "-" + strconv.FormatUint(k.seq.Add(1), 10)
		body := rawBody(id)
		w, err := k.mux.Register(id)
		if err != nil {
			return 0, err
		}
		err = k.reqW.WriteMessages(ctx, kafkago.Message{
			Topic: k.reqTopic, Value: body,
			Headers: []kafkago.Header{{Key: rawCorrelationHeader, Value: []byte(id)}},
		})
		if err != nil {
			w.Cancel()
			return 0, err
		}
		return await(ctx, w, body)
	}
}

func (k *rawKafka) close() error {
	k.cancel()
	err := errors.Join(k.reqR.Close(), k.repR.Close())
	k.bg.Wait()
	err = errors.Join(err, k.reqW.Close(), k.repW.Close())
	k.reqW.Transport.(*kafkago.Transport).CloseIdleConnections()
	k.repW.Transport.(*kafkago.Transport).CloseIdleConnections()
	return err
}

// rawLevel is how much of the gateway's durability a raw RabbitMQ loop
// pays for.
type rawLevel int

const (
	// rawFast: transient messages, no confirms, auto-ack, classic request
	// queue, exclusive server-named reply queue.
	rawFast rawLevel = iota
	// rawConfirms: publisher confirms on both sides, persistent messages, a
	// quorum request queue, manual acks of requests; replies still go to an
	// exclusive, non-durable reply queue (where the broker keeps persistent
	// messages in memory only) and are auto-acked.
	rawConfirms
	// rawDurableReplies: rawConfirms with the gateway's reply queue too: a
	// durable classic queue with x-expires, persistent replies the broker
	// writes to disk, manual acks of replies; publishes are mandatory and
	// requests carry a per-message TTL, as the gateway's do.
	rawDurableReplies
)

// rawRabbit is an amqp091-go RPC loop: requests on a queue of their own,
// a service consuming it and publishing each reply to the request's
// reply_to, and a reply queue consumed on the caller's connection, with the
// guarantees of its rawLevel.
type rawRabbit struct {
	reqConn, svcConn *amqp.Connection
	req              *amqp.Channel
	queue, replyTo   string
	level            rawLevel
	mode             uint8
	mux              *correlation.Registry
	bg               sync.WaitGroup
	seq              atomic.Uint64
	prefix           string
}

func newRawRabbit(url string, level rawLevel) (_ *rawRabbit, err error) {
	r := &rawRabbit{mux: correlation.NewRegistry(), prefix: randomSuffix(), level: level, mode: amqp.Transient}
	r.queue = "loadtest.raw." + r.prefix
	defer func() {
		if err != nil {
			_ = r.close()
		}
	}()
	safe := level >= rawConfirms
	mandatory := level >= rawDurableReplies
	dial := func() (*amqp.Connection, *amqp.Channel, error) {
		conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
		if err != nil {
			return nil, nil, err
		}
		ch, err := conn.Channel()
		if err == nil && safe {
			err = ch.Confirm(false)
		}
		if err != nil {
			_ = conn.Close()
			return nil, nil, err
		}
		return conn, ch, nil
	}
	var svc *amqp.Channel
	if r.reqConn, r.req, err = dial(); err != nil {
		return nil, err
	}
	if r.svcConn, svc, err = dial(); err != nil {
		return nil, err
	}
	var args amqp.Table
	if safe {
		args, r.mode = amqp.Table{"x-queue-type": "quorum"}, amqp.Persistent
	}
	if _, err := svc.QueueDeclare(r.queue, true, false, false, false, args); err != nil {
		return nil, err
	}
	if err := svc.Qos(Connections, 0, false); err != nil {
		return nil, err
	}
	reqs, err := svc.Consume(r.queue, "", !safe, false, false, false, nil)
	if err != nil {
		return nil, err
	}
	var ackMu sync.Mutex
	for range Connections {
		r.bg.Go(func() {
			for d := range reqs {
				dc, err := svc.PublishWithDeferredConfirm("", d.ReplyTo, mandatory, false,
					amqp.Publishing{CorrelationId: d.CorrelationId, Body: d.Body, DeliveryMode: r.mode})
				if err != nil {
					continue // the connection is closing: reqs ends
				}
				if dc != nil {
					dc.Wait()
				}
				if safe {
					ackMu.Lock()
					_ = d.Ack(false)
					ackMu.Unlock()
				}
			}
		})
	}
	var rq amqp.Queue
	if level >= rawDurableReplies {
		rq, err = r.req.QueueDeclare(r.queue+".reply", true, false, false, false,
			amqp.Table{"x-queue-type": "classic", "x-expires": int64(5 * time.Minute / time.Millisecond)})
	} else {
		rq, err = r.req.QueueDeclare("", false, true, true, false, nil)
	}
	if err != nil {
		return nil, err
	}
	r.replyTo = rq.Name
	autoAck := level < rawDurableReplies
	replies, err := r.req.Consume(rq.Name, "", autoAck, autoAck, false, false, nil)
	if err != nil {
		return nil, err
	}
	r.bg.Go(func() {
		for d := range replies {
			r.mux.Deliver(envelope.Reply{CorrelationID: d.CorrelationId, Body: d.Body})
			if !autoAck {
				_ = d.Ack(false)
			}
		}
	})
	return r, nil
}

func (r *rawRabbit) op() loadtest.Op {
	mandatory := r.level >= rawDurableReplies
	return func(ctx context.Context) (int, error) {
		id := r.prefix + "-" + strconv.FormatUint(r.seq.Add(1), 10)
		body := rawBody(id)
		w, err := r.mux.Register(id)
		if err != nil {
			return 0, err
		}
		p := amqp.Publishing{CorrelationId: id, ReplyTo: r.replyTo, Body: body, DeliveryMode: r.mode}
		if mandatory {
			p.Expiration = "10000" // the gateway's per-message TTL: the request's budget
		}
		dc, err := r.req.PublishWithDeferredConfirm("", r.queue, mandatory, false, p)
		if err != nil {
			w.Cancel()
			return 0, err
		}
		if dc != nil {
			ok, err := dc.WaitContext(ctx)
			if err != nil || !ok {
				w.Cancel()
				return 0, fmt.Errorf("request %s not confirmed (%v)", id, err)
			}
		}
		return await(ctx, w, body)
	}
}

// close deletes the request queue (and a durable reply queue) and closes
// both connections.
func (r *rawRabbit) close() error {
	var err error
	if r.req != nil {
		_, err = r.req.QueueDelete(r.queue, false, false, false)
		if r.level >= rawDurableReplies && r.replyTo != "" {
			_, derr := r.req.QueueDelete(r.replyTo, false, false, false)
			err = errors.Join(err, derr)
		}
	}
	for _, c := range []*amqp.Connection{r.reqConn, r.svcConn} {
		if c != nil {
			err = errors.Join(err, c.Close())
		}
	}
	r.bg.Wait()
	return err
}

// rawTargets are the raw SDK loops of backend kind on the broker cfg
// points at, the floors of the gateway targets named in gateways, the one
// with the backend's defaults first: the loop without durability (kafka:
// both loops) is the floor of every one of them, the rabbitmq floors with
// durability only of the first, whose guarantees they have. cleanup stops
// them and notes in rep what went wrong; what the floors are goes to rep's
// notes at once.
func rawTargets(rep *Report, kind string, cfg node.Config, gateways []string) (_ []target, cleanup func(*Report), err error) {
	var closers []func() error
	var strays []func() string
	cleanup = func(rep *Report) {
		for _, c := range closers {
			if err := c(); err != nil && rep != nil {
				rep.Notes = append(rep.Notes, fmt.Sprintf("closing a raw %s loop: %v", kind, err))
			}
		}
		for _, s := range strays {
			if n := s(); n != "" && rep != nil {
				rep.Notes = append(rep.Notes, n)
			}
		}
	}
	raw := func(name string, op loadtest.Op, aim float64, vs []string) target {
		return target{name: name, raw: op, vs: vs, aim: aim, ceiling: aim > 0, samples: new(loadtest.Samples)}
	}
	switch kind {
	case "kafka":
		rep.Notes = append(rep.Notes, "Raw kafka-go floors: the same round trip as the gateway's (a Writer publishes the request with a correlation header, "+
			"a plain partition Reader answers it on a reply topic, the caller's Reader hands the reply to it by correlation id) on the same kfake. "+
			"kafka-go's Writer either sends each record in a produce request of its own (no linger: the c=1 floor) or batches them, "+
			"waiting up to its BatchTimeout of 1ms (linger 1ms: the c=64 floor); the gateway's own producer lingers only while a request is in flight.")
		var out []target
		for i, v := range []struct {
			name   string
			batch  int
			linger time.Duration
		}{
			{"raw kafka-go request/reply (no linger)", 1, time.Millisecond},
			{"raw kafka-go request/reply (linger 1ms)", 100, time.Millisecond},
		} {
			// A topic pair per loop: neither reads the other's records.
			k := newRawKafka(cfg.Broker.Kafka.Brokers, rawKafkaRequests[i], rawKafkaReplies[i], v.batch, v.linger)
			closers = append(closers, k.close)
			strays = append(strays, func() string {
				if n := k.stray.Load(); n > 0 {
					return fmt.Sprintf("%s: %d replies came after their request had given up", v.name, n)
				}
				return ""
			})
			out = append(out, raw(v.name, k.op(), 0.50, gateways))
		}
		return out, cleanup, nil
	case "rabbitmq":
		url := cfg.Broker.RabbitMQ.URL
		if url == "" {
			url = rabbitmq.DefaultURL
		}
		var out []target
		for _, f := range []struct {
			name  string
			level rawLevel
			aim   float64
			vs    []string
		}{
			// Issue 17 replaced the throughput aim of 0.60 against floor 1
			// by CPU-per-request aims (rabbitmq-procs); the ceiling row stays.
			{"raw amqp091-go RPC, floor 1 (no durability)", rawFast, 0, gateways},
			{"raw amqp091-go RPC, floor 2 (confirms+persistent+quorum, exclusive reply queue)", rawConfirms, 0, gateways[:1]},
			{"raw amqp091-go RPC, floor 3 (floor 2 + durable reply queue, persistent replies, reply acks)", rawDurableReplies, 0, gateways[:1]},
		} {
			r, err := newRawRabbit(url, f.level)
			if err != nil {
				cleanup(nil)
				return nil, nil, fmt.Errorf("scenario: raw amqp091-go loop (%s): %w", f.name, err)
			}
			closers = append(closers, r.close)
			t := raw(f.name, r.op(), f.aim, f.vs)
			t.ceiling = f.level == rawFast
			out = append(out, t)
		}
		note := "Raw amqp091-go floors on the same server: an RPC loop. " +
			"Floor 1 has no durability (transient messages, no confirms, auto-ack, classic queue, exclusive server-named reply queue); its throughput aim (0.60, issue 7) was replaced by issue 17's CPU-per-request aims, which rabbitmq-procs measures; " +
			"floor 2 adds the request-side guarantees the gateway gives (publisher confirms on both sides, persistent messages, quorum request queue, manual acks) " +
			"but keeps the exclusive, non-durable reply queue, where the broker keeps persistent replies in memory and the reply consumer auto-acks; " +
			"floor 3 also has the gateway's reply queue (durable classic queue with x-expires, persistent replies written to disk, manual reply acks, mandatory publishes, request TTL), " +
			"which is what the gateway pays with its default broker.rabbitmq.transient_replies false."
		if len(gateways) > 1 {
			note += fmt.Sprintf(" Floor 1 is also the floor of %s: the gateway with broker.rabbitmq.queue_type classic and "+
				"transient_requests and transient_replies true, i.e. a classic durable work queue and transient requests and replies, "+
				"but still publisher confirms, mandatory publishes and manual acks of requests and replies (its reply queue is the gateway's durable one): "+
				"the guarantees floor 1 lacks, except persistence. Floors 2 and 3, persistent and quorum, are compared with %s only.",
				strings.Join(gateways[1:], ", "), gateways[0])
		}
		rep.Notes = append(rep.Notes, note)
		return out, cleanup, nil
	case "nats":
		url := cfg.Broker.NATS.URL
		if url == "" {
			url = natsb.DefaultURL
		}
		r, err := newRawNATS(url)
		if err != nil {
			return nil, nil, fmt.Errorf("scenario: raw nats.go loop: %w", err)
		}
		closers = append(closers, r.close)
		t := raw(rawNATSName, r.op(), 0, gateways)
		t.ceiling = true
		rep.Notes = append(rep.Notes, "Raw nats.go floor on the same server: core request/reply, RequestMsg (nats.go's shared reply subscription "+
			"and map of waiters) to a queue subscription on a second connection that answers from nats.go's callback with RespondMsg. "+
			"The request carries the headers the gateway's envelope carries on the echo route (correlation-id, deadline, content-type, http-method, http-path, traceparent; "+
			"the reply subject travels in the protocol instead of a reply-to header), the reply correlation-id, status, content-type and traceparent, "+
			"the body the scenario's JSON payload. No guarantee is missing from it that core mode gives: both are at most once.")
		return []target{t}, cleanup, nil
	}
	return nil, func(*Report) {}, nil
}
