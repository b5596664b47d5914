package node_test

import (
	"os"
	"testing"

	"github.com/syncgate/syncgate/internal/node"
)

// FuzzParse feeds arbitrary YAML to Parse: it must never panic, and a
// configuration it accepts must survive SetDefaults and Validate without
// panicking (an error is fine). The seeds run as an ordinary test.
func FuzzParse(f *testing.F) {
	if example, err := os.ReadFile("../../examples/syncgate.yaml"); err == nil {
		f.Add(example)
	}
	for _, seed := range []string{
		"",
		"addr: 127.0.0.1:1",
		"routes: [{method: post, path: /x, destination: d, mode: sync, timeout: 1s}]",
		"http: {max_body: 1MiB, max_header_bytes: 64KiB, max_in_flight: 10, max_wait: 5s}",
		"http: {max_body: -1}",
		"http: {max_body: [1]}",
		"shutdown: {drain_timeout: forever}",
		"idempotency: {ttl: 1h, max_entries: 5}",
		"routes: [{path: /x, max_in_flight: 99999999999999999999}]",
		"routes: {method: post}",
		"adr: x",
		"&a [*a]",
		"log: {level: debug, format: json}\nbroker: {kind: memory, memory: {queue_size: 1}}",
		"--- !!binary AAAA",
		"http:\n  max_wait: 1h\nroutes:\n  - {method: GET, path: /{id}, destination: d, max_wait: 0s}",
		"routes:\n  - &r {method: POST, path: /a, destination: d}\n  - {<<: *r, path: /b}",
		"routes: [&r {method: POST, <<: *r}]",
		"a: &x {b: *x}",
		"cluster: {enabled: true, addrs: {a: ~}}\nnode: a",
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		cfg, err := node.Parse(data)
		if err != nil {
			return
		}
		cfg.SetDefaults()
		_ = cfg.Validate()
	})
}
