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
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/brokers/responder"
	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/cmd/syncgate/node"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	kind := fs.String("broker", "kafka", "broker backend: kafka or rabbitmq")
	kafkaBrokers := fs.String("kafka-brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	rabbitURL := fs.String("rabbitmq-url", "", "RabbitMQ URL (default amqp://guest:guest@127.0.0.1:5672/)")
	latency := fs.Bool("rabbitmq-latency", false, "RabbitMQ latency profile: classic work queues, transient requests and replies (brokers/rabbitmq/doc.go)")
	concurrency := fs.Int("concurrency", 256, "handlers at once per demo route")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var cfg node.BrokerConfig
	cfg.Kind = *kind
	switch *kind {
	case "kafka":
		cfg.Kafka.Brokers = strings.Split(*kafkaBrokers, ",")
		cfg.Kafka.SetDefaults()
		if err := cfg.Kafka.Validate(); err != nil {
			return err
		}
	case "rabbitmq":
		cfg.RabbitMQ.URL = *rabbitURL
		if *latency {
			cfg.RabbitMQ.QueueType = rabbitmq.QueueTypeClassic
			cfg.RabbitMQ.TransientRequests, cfg.RabbitMQ.TransientReplies = true, true
		}
		cfg.RabbitMQ.SetDefaults()
		if err := cfg.RabbitMQ.Validate(); err != nil {
			return err
		}
	default:
		return fmt.Errorf("--broker: %q is not kafka or rabbitmq", *kind)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	b, err := node.NewBroker(cfg, log)
	if err != nil {
		return err
	}
	defer b.Close()
	svc := &responder.Service{Subscriber: b, Publisher: b, Logger: log}
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
