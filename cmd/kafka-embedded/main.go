// Command kafka-embedded runs an in-process Kafka-compatible broker (kfake,
// from github.com/twmb/franz-go) on a loopback port, so syncgate's Kafka path
// can be tried without a Kafka installation:
//
//	go run ./cmd/kafka-embedded -topics orders,payments
//
// then point the gateway and the services at 127.0.0.1:9092. It speaks the
// Kafka wire protocol (produce, fetch, consumer groups, offsets, topic
// creation); state lives in memory unless -data-dir is given. It runs until
// SIGINT or SIGTERM. It is a development and test tool, not a Kafka.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr, nil); err != nil && !errors.Is(err, flag.ErrHelp) {
		fmt.Fprintln(os.Stderr, "kafka-embedded:", err)
		os.Exit(1)
	}
}

// run starts the broker, reports its address on stdout (and on started,
// when set), and blocks until ctx ends.
func run(ctx context.Context, args []string, stdout, stderr io.Writer, started chan<- string) error {
	fs := flag.NewFlagSet("kafka-embedded", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", "127.0.0.1:9092", "address to listen on; the host must be 127.0.0.1 (port 0: any free port)")
	topics := fs.String("topics", "", "comma-separated topics to create")
	partitions := fs.Int("partitions", 4, "partitions of each created topic")
	autoCreate := fs.Bool("auto-create", false, "let clients create topics by producing to them (when they ask to)")
	dataDir := fs.String("data-dir", "", "keep topics, records and offsets in this directory across restarts")
	maxMessage := fs.Int("max-message-bytes", 2<<20, "largest record batch accepted")
	logLevel := fs.String("log-level", "none", "broker log level: none, error, warn, info, debug")
	if err := fs.Parse(args); err != nil {
		return err
	}
	host, portStr, err := net.SplitHostPort(*listen)
	if err != nil {
		return fmt.Errorf("-listen %q: %w", *listen, err)
	}
	if host != "127.0.0.1" {
		return fmt.Errorf("-listen %q: kfake listens on 127.0.0.1 only", *listen)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil || port < 0 || port > 65535 {
		return fmt.Errorf("-listen %q: bad port", *listen)
	}
	if *partitions < 1 {
		return fmt.Errorf("-partitions %d: must be positive", *partitions)
	}
	level, ok := map[string]kfake.LogLevel{
		"none": kfake.LogLevelNone, "error": kfake.LogLevelError, "warn": kfake.LogLevelWarn,
		"info": kfake.LogLevelInfo, "debug": kfake.LogLevelDebug,
	}[strings.ToLower(*logLevel)]
	if !ok {
		return fmt.Errorf("-log-level %q: want none, error, warn, info or debug", *logLevel)
	}

	opts := []kfake.Opt{
		kfake.Ports(port),
		kfake.WithLogger(kfake.BasicLogger(stderr, level)),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(*maxMessage)}),
	}
	var names []string
	for _, t := range strings.Split(*topics, ",") {
		if t = strings.TrimSpace(t); t != "" {
			names = append(names, t)
		}
	}
	if len(names) > 0 {
		opts = append(opts, kfake.SeedTopics(int32(*partitions), names...))
	}
	if *autoCreate {
		opts = append(opts, kfake.AllowAutoTopicCreation(), kfake.DefaultNumPartitions(*partitions))
	}
	if *dataDir != "" {
		opts = append(opts, kfake.DataDir(*dataDir))
	}
	c, err := kfake.NewCluster(opts...)
	if err != nil {
		return fmt.Errorf("start broker: %w", err)
	}
	defer c.Close()

	addr := c.ListenAddrs()[0]
	fmt.Fprintf(stdout, "kafka-embedded: listening on %s", addr)
	if len(names) > 0 {
		fmt.Fprintf(stdout, ", topics %s (%d partitions each)", strings.Join(names, ", "), *partitions)
	}
	if *dataDir == "" {
		// Clients cope (syncgate recreates its reply topics), but records
		// and offsets in flight are gone: say so where the operator looks.
		fmt.Fprint(stdout, "; state in memory, a restart starts empty (-data-dir keeps it)")
	}
	fmt.Fprintln(stdout, "; Ctrl-C to stop")
	if started != nil {
		started <- addr
	}
	<-ctx.Done()
	fmt.Fprintln(stdout, "kafka-embedded: stopping")
	return nil
}
