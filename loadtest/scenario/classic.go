package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/node"
)

// classicName is the rabbitmq scenario's second gateway target: the gateway
// over a classic work queue with transient requests and replies, which
// gives up persistence (and replication) for latency.
const classicName = "gateway/rabbitmq (classic, transient)"

// classicBroker is the broker.rabbitmq of the classic target, its node's
// and its echo service's alike.
func classicBroker(base rabbitmq.Config) rabbitmq.Config {
	c := base
	c.QueueType = rabbitmq.QueueTypeClassic
	c.TransientRequests, c.TransientReplies = true, true
	c.SetDefaults()
	return c
}

// classicConfig is the node of the classic target, next to the default
// rabbitmq node configured by base: the demo disabled and POST /demo/echo
// routed to a queue of its own (the default node has declared demo.echo a
// quorum queue, and the broker refuses to declare it again with another
// type), under a node id, and so a reply queue, of its own.
func classicConfig(base node.Config) node.Config {
	suffix := randomSuffix()
	cfg := base
	cfg.Node, cfg.ReplyTo = "loadtest-classic-"+suffix, ""
	cfg.Broker.RabbitMQ = classicBroker(base.Broker.RabbitMQ)
	cfg.Demo.Enabled = false
	cfg.Routes = []node.RouteConfig{{
		Name: "echo", Method: "POST", Path: "/demo/echo", Destination: "loadtest.classic.echo." + suffix, Mode: "auto",
	}}
	cfg.SetDefaults()
	return cfg
}

// startClassic starts the classic target, configured by classicConfig: an
// echo service in this process on the queue of its route, then its node.
// stop stops both, deletes their queues and notes in rep what went wrong.
func startClassic(cfg node.Config) (_ target, stop func(*Report), err error) {
	dest := cfg.Routes[0].Destination
	queues := []string{dest, cfg.ReplyTo}
	svcCfg := cfg.Broker.RabbitMQ
	svcCfg.ConnectionName = "loadtest classic echo"
	// Before the node, so that its first request finds the queue; with
	// the concurrency a node gives its own demo service.
	svc, err := startEcho(svcCfg, dest, cfg.Demo.Concurrency)
	if err != nil {
		return target{}, nil, err
	}
	n, err := startNode(cfg)
	if err != nil {
		err = errors.Join(err, svc.stop(), deleteQueues(svcCfg.URL, queues...))
		return target{}, nil, fmt.Errorf("scenario: %s: %w", classicName, err)
	}
	stop = func(rep *Report) {
		// The node first: what it still waits for gets its reply.
		if err := errors.Join(n.stop(), svc.stop(), deleteQueues(svcCfg.URL, queues...)); err != nil {
			rep.Notes = append(rep.Notes, fmt.Sprintf("stopping %s: %v", classicName, err))
		}
	}
	t := echoTarget(classicName, n.base+"/demo/echo")
	t.srv, t.backend = n, "rabbitmq"
	return t, stop, nil
}

// echoService is demo.Echo served by a rabbitmq.Client of this process.
type echoService struct {
	client   *rabbitmq.Client
	cancel   context.CancelFunc
	done     chan struct{} // closed when Serve has returned
	serveErr error         // what Serve returned; read after done
}

// startEcho serves demo.Echo on dest with concurrency handlers and returns
// once the queue is declared and consumed.
func startEcho(cfg rabbitmq.Config, dest string, concurrency int) (*echoService, error) {
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	cfg.Logger = quiet
	c, err := rabbitmq.Dial(cfg)
	if err != nil {
		return nil, fmt.Errorf("scenario: echo service on %s: %w", dest, err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &echoService{client: c, cancel: cancel, done: make(chan struct{})}
	svc := &responder.Service{Subscriber: c, Publisher: c, Logger: quiet}
	ready := make(chan struct{})
	go func() {
		defer close(s.done)
		s.serveErr = svc.Serve(ctx, dest, demo.Echo,
			brokers.WithConcurrency(concurrency), brokers.WithReady(func() { close(ready) }))
	}()
	select {
	case <-ready:
		return s, nil
	case <-s.done:
		err = errors.Join(errors.New("stopped before consuming"), s.serveErr)
	case <-time.After(30 * time.Second):
		err = errors.New("not consuming within 30s")
	}
	return nil, fmt.Errorf("scenario: echo service on %s: %w", dest, errors.Join(err, s.stop()))
}

// stop ends the subscription, once its handlers have returned, and closes
// the client. Call it once.
func (s *echoService) stop() error {
	s.cancel()
	<-s.done
	return errors.Join(s.serveErr, s.client.Close())
}

// deleteQueues deletes the named queues on the server at url: a scenario
// leaves none behind.
func deleteQueues(url string, names ...string) error {
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(5 * time.Second)})
	if err != nil {
		return fmt.Errorf("scenario: delete queues: %w", err)
	}
	defer func() { _ = conn.Close() }()
	ch, err := conn.Channel()
	if err != nil {
		return fmt.Errorf("scenario: delete queues: %w", err)
	}
	for _, q := range names {
		if _, err := ch.QueueDelete(q, false, false, false); err != nil {
			return fmt.Errorf("scenario: delete queue %q: %w", q, err)
		}
	}
	return nil
}
