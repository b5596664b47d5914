package scenario

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/syncgate/syncgate/loadtest"
)

// Options tune every scenario.
type Options struct {
	// Short selects the bounded version `make bench` runs (a few minutes
	// for all scenarios together).
	Short bool
	// Progress receives progress lines (nil: none).
	Progress io.Writer
	// Scale multiplies durations (default 1); tests use a small value.
	Scale float64
	// Waiters is how many requests many-waiters holds open (default 10000).
	Waiters int
	// Nodes is how many gateway nodes cluster-procs runs (default
	// ClusterNodes).
	Nodes int
	// NodeCommand starts the gateway node of many-waiters in a child
	// process (argv; see ServeNode). Default: this executable with the
	// argument "serve-node".
	NodeCommand []string
	// FloorCommand is the argv prefix of the naive floors the multi-process
	// scenarios start (naive-gateway, naive-echo, echo-server). Default:
	// this executable (cmd/loadtest).
	FloorCommand []string
}

func (o Options) dur(short, full time.Duration) time.Duration {
	d := full
	if o.Short {
		d = short
	}
	if o.Scale > 0 {
		d = time.Duration(float64(d) * o.Scale)
	}
	return d
}

func (o Options) pick(short, full int) int {
	if o.Short {
		return short
	}
	return full
}

// Report is what a scenario measured.
type Report struct {
	Scenario    string             `json:"scenario"`
	Description string             `json:"description"`
	Results     []*loadtest.Result `json:"results"`
	Comparisons []Comparison       `json:"comparisons,omitempty"`
	Memory      *MemoryUse         `json:"memory,omitempty"`
	Streams     *StreamMemory      `json:"streams,omitempty"`
	Notes       []string           `json:"notes,omitempty"`
	Skipped     string             `json:"skipped,omitempty"`
	// Command, when set, is how to run the scenario in full (Markdown
	// shows it).
	Command string              `json:"-"`
	Plots   map[string][]string `json:"-"` // plot title → names of the results it shows
}

// Comparison is a figure as a ratio to its floor, measured in the same run.
type Comparison struct {
	What       string  `json:"what"`
	Value      float64 `json:"value"`
	Floor      string  `json:"floor"`
	FloorValue float64 `json:"floor_value"`
	Unit       string  `json:"unit"`
	Ratio      float64 `json:"ratio"`
	// Aim, when set, is the ratio's target, e.g. "≥ 0.60"; Met tells
	// whether this run reached it.
	Aim string `json:"aim,omitempty"`
	Met *bool  `json:"met,omitempty"`
}

func compare(what string, value float64, floor string, floorValue float64, unit string) Comparison {
	c := Comparison{What: what, Value: value, Floor: floor, FloorValue: floorValue, Unit: unit}
	if floorValue != 0 {
		c.Ratio = value / floorValue
	}
	return c
}

func (c Comparison) atLeast(aim float64) Comparison {
	met := c.Ratio >= aim
	c.Aim, c.Met = fmt.Sprintf("≥ %.2f", aim), &met
	return c
}

func (c Comparison) atMost(aim float64) Comparison {
	met := c.FloorValue > 0 && c.Ratio <= aim
	c.Aim, c.Met = fmt.Sprintf("≤ %.2f", aim), &met
	return c
}

// Result returns the named result of the report, or nil.
func (r *Report) Result(name string) *loadtest.Result {
	i := slices.IndexFunc(r.Results, func(x *loadtest.Result) bool { return x.Name == name })
	if i < 0 {
		return nil
	}
	return r.Results[i]
}

// Scenario is one standard scenario.
type Scenario struct {
	Name        string
	Description string
	Run         func(ctx context.Context, o Options) (*Report, error)
}

// ErrUnknown is returned by Run for a name that is not a scenario.
var ErrUnknown = errors.New("scenario: unknown scenario")

// All returns the scenarios in the order `make bench` runs them.
func All() []Scenario {
	return []Scenario{
		{"direct", "plain HTTP to the demo echo logic: the floor", Direct},
		{"memory", "gateway over the in-memory broker vs direct HTTP", Memory},
		{"kafka", "gateway over Kafka (kfake, in process) vs direct HTTP, the memory broker and raw kafka-go request/reply loops on the same kfake", Kafka},
		{"rabbitmq", "gateway over RabbitMQ (127.0.0.1:5672), with its defaults and with a classic queue and transient messages, vs direct HTTP, the memory broker and raw amqp091-go RPC loops on the same server", RabbitMQ},
		{"nats", "gateway over NATS (127.0.0.1:4222) in core mode vs direct HTTP, the memory broker and nats.go's own request/reply on the same server", NATS},
		{"auto-poll", "auto route over a slow service: 202, then polling until done (time to result)", AutoPoll},
		{"many-waiters", "10 000 requests held open on a slow route while a fast route is measured", ManyWaiters},
		{"many-streams", "10 000 event streams (SSE) of pending requests held open on one node while a fast route is measured: memory per stream", ManyStreams},
		{"memory-procs", "the gateway with its demo service as its own process vs a plain echo-server process: CPU per request of each", MemoryProcs},
		{"rabbitmq-procs", "cmd/demo and the gateway as processes over RabbitMQ (127.0.0.1:5672, its defaults: quorum queue, persistent messages) vs the naive amqp091-go gateway and echo service (persistent, confirmed, mandatory), then with transient replies as the pair's: CPU per request of each, and of the RabbitMQ server", RabbitMQProcs},
		{"kafka-procs", "kafka-embedded, cmd/demo and the gateway as three processes vs a naive kafka-go gateway and echo service on their own kafka-embedded: throughput, latency and CPU per request of every process", KafkaProcs},
		{"cluster-procs", "the scaled-down cluster of docs/scaling.md: gateway nodes in cluster mode (6 unless -nodes) on a Redis Cluster of 3 masters and 3 replicas, kafka-embedded and cmd/demo as processes, the load spread over the nodes: latency, CPU per request of every process, and what Redis does per request", ClusterProcs},
	}
}

// Run runs the named scenario.
func Run(ctx context.Context, name string, o Options) (*Report, error) {
	for _, s := range All() {
		if s.Name == name {
			rep, err := s.Run(ctx, o)
			if rep != nil {
				rep.Scenario, rep.Description = s.Name, s.Description
			}
			return rep, err
		}
	}
	return nil, fmt.Errorf("%w %q", ErrUnknown, name)
}
