// Command demo runs syncgate's demo service (demo.echo and demo.sleep, see
// brokers/responder/demo) as its own process on Kafka or RabbitMQ, so the
// gateway and the service can be tried as separate processes:
//
//	go run ./cmd/kafka-embedded -topics demo.echo,demo.sleep
//	go run ./cmd/demo --broker kafka --kafka-brokers 127.0.0.1:9092
//	go run ./cmd/syncgate --config examples/kafka.yaml
//
// It stops on SIGINT/SIGTERM, letting running handlers finish.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/kafka"
	natsb "github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/telemetry"
)

// broker is what the demo service needs of a backend: it consumes requests
// and publishes replies. It links no part of the gateway.
type broker interface {
	brokers.Publisher
	brokers.Subscriber
}

func main() {
	if err := run(os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

// run runs the demo service; --help writes the usage to stdout and returns
// nil (exit 0), a bad flag is one error line for main to print.
func run(args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(io.Discard) // the error is printed once, by main
	fs.Usage = func() {}
	kind := fs.String("broker", "kafka", "broker backend: kafka, rabbitmq or nats")
	kafkaBrokers := fs.String("kafka-brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	rabbitURL := fs.String("rabbitmq-url", "", "RabbitMQ URL (default amqp://guest:guest@127.0.0.1:5672/)")
	latency := fs.Bool("rabbitmq-latency", false, "RabbitMQ latency profile: classic work queues, transient requests and replies (brokers/rabbitmq/doc.go)")
	transientReplies := fs.Bool("rabbitmq-transient-replies", false, "RabbitMQ: publish replies with delivery mode 1 (transient_replies: a reply queued when the broker restarts is lost)")
	natsURL := fs.String("nats-url", "", "NATS URL (default nats://127.0.0.1:4222)")
	natsMode := fs.String("nats-mode", "", "NATS mode: core (default) or jetstream, as the gateway's broker.nats.mode")
	concurrency := fs.Int("concurrency", 256, "handlers at once per demo route")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			fs.SetOutput(stdout)
			fmt.Fprint(stdout, "Usage: demo [flags]\n\nRuns the demo service (demo.echo, demo.sleep) on Kafka, RabbitMQ or NATS.\n\nFlags:\n")
			fs.PrintDefaults()
			return nil
		}
		return fmt.Errorf("%w (demo --help lists the flags)", err)
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected argument %q (demo --help lists the flags)", fs.Arg(0))
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	var open func() (broker, error)
	switch *kind {
	case "kafka":
		cfg := kafka.Config{Brokers: strings.Split(*kafkaBrokers, ",")}
		cfg.SetDefaults()
		if err := cfg.Validate(); err != nil {
			return err
		}
		cfg.Logger = log
		open = func() (broker, error) { return kafka.New(cfg) }
	case "rabbitmq":
		cfg := rabbitmq.Config{URL: *rabbitURL}
		if *latency {
			cfg.QueueType = rabbitmq.QueueTypeClassic
			cfg.TransientRequests, cfg.TransientReplies = true, true
		}
		if *transientReplies {
			cfg.TransientReplies = true
		}
		cfg.SetDefaults()
		if err := cfg.Validate(); err != nil {
			return err
		}
		cfg.Logger = log
		open = func() (broker, error) {
			return rabbitmq.Dial(cfg)
		}
	case "nats":
		cfg := natsb.Config{URL: *natsURL, Mode: *natsMode}
		cfg.SetDefaults()
		if err := cfg.Validate(); err != nil {
			return err
		}
		cfg.Logger = log
		open = func() (broker, error) { return natsb.Dial(cfg) }
	default:
		return fmt.Errorf("--broker: %q is not kafka, rabbitmq or nats", *kind)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := open()
	if err != nil {
		return err
	}
	defer b.Close()
	// Tracing as the gateway's: OTEL_* variables (service name
	// syncgate-demo unless OTEL_SERVICE_NAME says otherwise).
	if os.Getenv("OTEL_SERVICE_NAME") == "" {
		_ = os.Setenv("OTEL_SERVICE_NAME", "syncgate-demo")
	}
	tr, err := telemetry.FromEnv(ctx)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tr.Shutdown(sctx)
	}()
	svc := &responder.Service{Subscriber: b, Publisher: b, Logger: log, Tracer: tr.Tracer, Propagator: tr.Propagator}
	ready := func() {
		log.Info("demo service ready", slog.String("broker", *kind),
			slog.String("destinations", demo.EchoDestination+","+demo.SleepDestination))
	}
	err = demo.Serve(ctx, svc, ready, brokers.WithConcurrency(*concurrency))
	if ctx.Err() != nil {
		return nil
	}
	return err
}
