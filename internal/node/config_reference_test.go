package node_test

import (
	"io"
	"os"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/syncgate/syncgate/brokers/kafka"
	natsb "github.com/syncgate/syncgate/brokers/nats"
	"github.com/syncgate/syncgate/brokers/rabbitmq"
	"github.com/syncgate/syncgate/correlation/redisstate"
	"github.com/syncgate/syncgate/internal/node"
)

const referenceFile = "../../examples/syncgate.yaml"

// notInReference are fields the reference file leaves out on purpose.
var notInReference = map[string]string{
	"cluster.redis.result_ttl":      "ignored: results.ttl governs",
	"cluster.redis.idempotency_ttl": "ignored: idempotency.ttl governs",
	"auth.api_keys[].principal":     "the list is empty by default; shown in a comment and in examples/auth.yaml",
	"auth.api_keys[].sha256":        "the list is empty by default; shown in a comment and in examples/auth.yaml",
	"auth.rate_limit.per":           "no limit by default (rate 0); shown in a comment and on a route",
	"auth.rate_limit.burst":         "no limit by default (rate 0); shown in a comment and on a route",
	"routes[].exchange":             "RabbitMQ only (the reference runs on memory); shown in a comment and in examples/rabbitmq.yaml",
	"routes[].routing_key":          "RabbitMQ only (the reference runs on memory); shown in a comment and in examples/rabbitmq.yaml",
	"routes[].profile":              "broker.profile is shown; a route's own is shown in a comment",
	"routes[].callback":             "needs a receiver and secrets; shown in a comment",
	"routes[].tap":                  "needs a sink; shown in a comment",
	"routes[].outbox":               "needs the outbox section; shown in a comment",
	"routes[].destinations":         "the shorthand of parts, which are shown; shown in a comment",
	"routes[].quorum":               "only with gather: quorum (the example gathers all); shown in a comment",
	"taps.sinks[].table":            "no sink by default (it writes files); shown in a comment",
	"taps.sinks[].url":              "no sink by default (it writes files); shown in a comment",
	"taps.sinks[].routing_key":      "no sink by default (it writes files); shown in a comment",
	"taps.sinks[].exchange":         "no sink by default (it writes files); shown in a comment",
	"taps.sinks[].destination":      "no sink by default (it writes files); shown in a comment",
	"taps.sinks[].compress":         "no sink by default (it writes files); shown in a comment",
	"taps.sinks[].max_age_days":     "no sink by default (it writes files); shown in a comment",
	"taps.sinks[].max_backups":      "no sink by default (it writes files); shown in a comment",
	"taps.sinks[].rotate_every":     "no sink by default (it writes files); shown in a comment",
	"taps.sinks[].max_size_mb":      "no sink by default (it writes files); shown in a comment",
	"taps.sinks[].path":             "no sink by default (it writes files); shown in a comment",
	"taps.sinks[].block_for":        "no sink by default (it writes files); shown in a comment",
	"taps.sinks[].block":            "no sink by default (it writes files); shown in a comment",
	"taps.sinks[].queue":            "no sink by default (it writes files); shown in a comment",
	"taps.sinks[].kind":             "no sink by default (it writes files); shown in a comment",
	"taps.sinks[].name":             "no sink by default (it writes files); shown in a comment",
}

// examples/syncgate.yaml is the one complete reference: every field of
// Config, at any depth, appears in it (issue 15, point 4).
func TestReferenceConfigListsEveryField(t *testing.T) {
	data, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatal(err)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	present := make(map[string]bool)
	yamlPaths(doc.Content[0], "", present)
	var fields []string
	configPaths(reflect.TypeFor[node.Config](), "", &fields)
	if len(fields) < 100 {
		t.Fatalf("found only %d fields in Config: the walk is broken", len(fields))
	}
	for _, f := range fields {
		if _, skip := notInReference[f]; !skip && !present[f] {
			t.Errorf("%s is a configuration field missing from %s", f, referenceFile)
		}
	}
	for p := range notInReference {
		if !slices.Contains(fields, p) {
			t.Errorf("notInReference names %s, which is no field (any more)", p)
		}
	}
}

// configPaths appends the YAML path of every leaf field of t; a list of
// structs contributes its element's fields as path[].field.
func configPaths(t reflect.Type, path string, out *[]string) {
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if !f.IsExported() || name == "-" {
			continue
		}
		if name == "" {
			name = strings.ToLower(f.Name)
		}
		p := name
		if path != "" {
			p = path + "." + name
		}
		ft := f.Type
		switch {
		case ft.Kind() == reflect.Struct && !reflect.PointerTo(ft).Implements(reflect.TypeFor[yaml.Unmarshaler]()):
			configPaths(ft, p, out)
		case ft.Kind() == reflect.Slice && ft.Elem().Kind() == reflect.Struct:
			configPaths(ft.Elem(), p+"[]", out)
		default:
			*out = append(*out, p)
		}
	}
}

// yamlPaths records the path of every key in n, lists of mappings as
// path[].key.
func yamlPaths(n *yaml.Node, path string, out map[string]bool) {
	switch n.Kind {
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			p := n.Content[i].Value
			if path != "" {
				p = path + "." + p
			}
			out[p] = true
			yamlPaths(n.Content[i+1], p, out)
		}
	case yaml.SequenceNode:
		for _, item := range n.Content {
			if item.Kind == yaml.MappingNode {
				yamlPaths(item, path+"[]", out)
			}
		}
	}
}

// The values the reference file gives are the defaults, so that it can be
// read as the table of defaults; the broker sections it does not select
// load without being used.
func TestReferenceConfigShowsTheDefaults(t *testing.T) {
	data, err := os.ReadFile(referenceFile)
	if err != nil {
		t.Fatal(err)
	}
	file, err := node.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	var def node.Config
	def.HTTP.MaxInFlight = node.DefaultMaxInFlight
	def.Shutdown.ReadinessDelay = node.DefaultReadinessDelay
	def.Shutdown.DrainTimeout = node.DefaultDrainTimeout
	def.SetDefaults()

	wantKafka := kafka.Config{Brokers: file.Broker.Kafka.Brokers}
	wantKafka.SetDefaults()
	var wantRabbit rabbitmq.Config
	wantRabbit.SetDefaults()
	var wantNATS natsb.Config
	wantNATS.SetDefaults()
	var wantRedis redisstate.Config
	wantRedis.SetDefaults()
	gotRedis := file.Cluster.Redis
	gotRedis.Logger, gotRedis.ResultTTL, gotRedis.IdempotencyTTL = wantRedis.Logger, wantRedis.ResultTTL, wantRedis.IdempotencyTTL
	if len(gotRedis.ClusterAddrs) == 0 && len(gotRedis.SentinelAddrs) == 0 { // [] in the file, nil by default
		gotRedis.ClusterAddrs, gotRedis.SentinelAddrs = nil, nil
	}

	for _, c := range []struct {
		name      string
		got, want any
	}{
		{"log", file.Log, def.Log},
		{"broker.kind", file.Broker.Kind, def.Broker.Kind},
		{"broker.publish_timeout", file.Broker.PublishTimeout, def.Broker.PublishTimeout},
		{"broker.reply_concurrency", file.Broker.ReplyConcurrency, def.Broker.ReplyConcurrency},
		{"broker.memory", file.Broker.Memory, def.Broker.Memory},
		{"broker.kafka", file.Broker.Kafka, wantKafka},
		{"broker.rabbitmq", file.Broker.RabbitMQ, wantRabbit},
		{"broker.nats", file.Broker.NATS, wantNATS},
		{"demo.concurrency", file.Demo.Concurrency, def.Demo.Concurrency},
		{"http", file.HTTP, def.HTTP},
		{"results", file.Results, def.Results},
		{"shutdown", file.Shutdown, def.Shutdown},
		{"idempotency", file.Idempotency, def.Idempotency},
		{"cluster.enabled", file.Cluster.Enabled, false},
		{"cluster.redis", gotRedis, wantRedis},
		{"cluster.lease_ttl", file.Cluster.LeaseTTL, 10 * time.Second},
		{"cluster.claim_margin", file.Cluster.ClaimMargin, 5 * time.Second},
		{"addr", file.Addr, def.Addr},
		{"tls", file.TLS, def.TLS},
	} {
		if !reflect.DeepEqual(c.got, c.want) {
			t.Errorf("%s in %s is %+v, the default is %+v", c.name, referenceFile, c.got, c.want)
		}
	}
}

// The reference file loads as it is, and each broker section it carries is
// a valid one when its kind is chosen.
func TestReferenceConfigLoadsWithEveryBroker(t *testing.T) {
	for _, kind := range []string{"memory", "kafka", "rabbitmq", "nats"} {
		cfg, err := node.Load([]string{"--config", referenceFile, "--broker", kind}, env(nil), io.Discard)
		if err != nil || cfg.Broker.Kind != kind {
			t.Errorf("--broker %s: %v", kind, err)
		}
	}
}
