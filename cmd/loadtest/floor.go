package main

// The naive floors (package loadtest/floor) as processes of their own, for
// the scenarios that measure each process's CPU: they print one JSON line
// once serving ({"addr":"127.0.0.1:PORT"} or {"ready":true}) and run until
// SIGINT/SIGTERM or until their stdin closes, as serve-node does.

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"

	"github.com/syncgate/syncgate/loadtest/floor"
)

const floorUsage = `usage: loadtest %s [flags]

%s
Once serving it prints %s on stdout, then runs until SIGINT/SIGTERM or until
its stdin closes.

`

// runFloor runs one of the floor commands: naive-gateway, naive-echo or
// echo-server.
func runFloor(ctx context.Context, name string, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	var (
		what, line string
		start      func(ctx context.Context, log *slog.Logger, printed func(v any)) error
	)
	switch name {
	case "naive-gateway":
		what = "The naive gateway: net/http, one kafka-go Writer (1 ms BatchTimeout, leader acks) or an\n" +
			"amqp091-go channel with confirms, one reply consumer, a mutex-guarded map of channels."
		line = `{"addr":"127.0.0.1:PORT"}`
		cfg := floor.GatewayConfig{}
		registerBroker(fs, &cfg.Broker)
		fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:0", "listen address")
		fs.DurationVar(&cfg.Timeout, "timeout", 0, "how long a request waits for its reply (default 10s)")
		fs.BoolVar(&cfg.Persistent, "persistent", false, "RabbitMQ: persistent requests (default transient, as the RPC tutorial)")
		start = func(ctx context.Context, log *slog.Logger, printed func(any)) error {
			cfg.Logger = log
			cfg.Listening = func(addr string) { printed(map[string]string{"addr": addr}) }
			return floor.Gateway(ctx, cfg)
		}
	case "naive-echo":
		what = "The naive echo service: a kafka-go Reader in a consumer group and an async Writer, or an\n" +
			"amqp091-go consumer acking each request once its reply is confirmed; it answers the naive\n" +
			"gateway and syncgate's gateway alike."
		line = `{"ready":true}`
		cfg := floor.EchoConfig{}
		registerBroker(fs, &cfg.Broker)
		fs.StringVar(&cfg.Group, "group", "naive-echo", "Kafka: the consumer group")
		fs.IntVar(&cfg.Prefetch, "prefetch", 256, "RabbitMQ: unacked requests at once")
		fs.StringVar(&cfg.QueueType, "queue-type", "classic", "RabbitMQ: the x-queue-type of the queue when it must be declared: classic or quorum")
		start = func(ctx context.Context, log *slog.Logger, printed func(any)) error {
			cfg.Logger = log
			cfg.Ready = func() { printed(map[string]bool{"ready": true}) }
			return floor.Echo(ctx, cfg)
		}
	default: // echo-server
		what = "A plain net/http echo: each POST body answered with itself and its content type."
		line = `{"addr":"127.0.0.1:PORT"}`
		cfg := floor.EchoServerConfig{}
		fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:0", "listen address")
		start = func(ctx context.Context, _ *slog.Logger, printed func(any)) error {
			cfg.Listening = func(addr string) { printed(map[string]string{"addr": addr}) }
			return floor.EchoServer(ctx, cfg)
		}
	}
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), floorUsage, name, what, line)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args, stdout, stderr); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("%s: unexpected argument %q", name, fs.Arg(0))
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	// Like serve-node: the parent closing stdin (or dying) stops the
	// process. The read is left blocked when the context ends otherwise;
	// the process exits then.
	go func() {
		_, _ = io.Copy(io.Discard, stdin)
		cancel()
	}()
	var mu sync.Mutex
	enc := json.NewEncoder(stdout)
	printed := func(v any) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(v)
	}
	log := slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	if err := start(ctx, log, printed); err != nil {
		return fmt.Errorf("%s: %w", name, err)
	}
	return nil
}

// registerBroker registers the flags that say where the requests go.
func registerBroker(fs *flag.FlagSet, b *floor.Broker) {
	fs.StringVar(&b.Kind, "broker", floor.Kafka, "kafka or rabbitmq")
	b.KafkaBrokers = []string{"127.0.0.1:9092"}
	fs.Func("kafka-brokers", "Kafka bootstrap brokers, comma-separated (default 127.0.0.1:9092)", func(s string) error {
		b.KafkaBrokers = strings.Split(s, ",")
		return nil
	})
	fs.StringVar(&b.Topic, "topic", "demo.echo", "Kafka: the request topic")
	fs.StringVar(&b.RabbitMQURL, "rabbitmq-url", "amqp://guest:guest@127.0.0.1:5672/", "RabbitMQ URL")
	fs.StringVar(&b.Queue, "queue", "demo.echo", "RabbitMQ: the request queue")
}
