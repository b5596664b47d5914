// Package node assembles one syncgate gateway node from its Config: the
// broker backend, the reply consumer, the correlation registry and result
// store, the HTTP server, and (in the embedded default) the demo service. It
// owns their lifecycle: Run starts them and, when its context ends, drains
// in-flight requests before it stops consumers and closes the broker.
//
// Config is loaded from a YAML file, then SYNCGATE_* environment variables,
// then command-line flags; later sources win.
package node
