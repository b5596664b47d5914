// Package node assembles one syncgate gateway node from its Config: the
// broker backend, the reply consumer, the correlation registry and result
// store, the HTTP server, and (in the embedded default) the demo service. It
// owns their lifecycle: Run starts them and, when its context ends, drains
// in-flight requests before it stops consumers and closes the broker.
//
// It is the composition root of cmd/syncgate and of the load scenarios
// (loadtest/scenario), and internal: embedding a whole gateway in another Go
// program is not a supported use; run the binary.
//
// New does not touch the network beyond its listener: Run takes the node
// id in Redis (cluster mode) and then connects to the broker in the
// background, retrying with a capped, jittered back-off and logging one
// line per state change (connect.go). Meanwhile /readyz answers 503 naming
// the address; broker.wait_for bounds the wait. A refusal that waiting
// does not cure (wrong RabbitMQ or Redis credentials, the id held by a live
// process) ends Run at once. Nothing is consumed before the node id is
// taken: a second process with a live node's id never touches the broker.
//
// Config is loaded from a YAML file, then SYNCGATE_* environment variables,
// then command-line flags; later sources win. The file is checked against
// Config's yaml tags before it is decoded (yamlcheck.go), so that its errors
// name the line and YAML path. SetDefaults fills in zero fields; the few
// whose zero means something (http.max_in_flight: no limit;
// shutdown.readiness_delay and drain_timeout: none) get their default from
// the base the sources are laid over instead, and an explicit zero on any
// other field SetDefaults would fill is refused (zeros.go).
package node
