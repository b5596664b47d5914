// Package envelope is syncgate's wire contract: the headers a request carries
// to a service and the headers a service's reply must carry back. It encodes
// and decodes brokers.Message values and validates what comes back, so a reply
// with no or a malformed correlation id is rejected with a precise error
// instead of reaching the registry.
//
// Header names are lower case and identical on every backend (Kafka record
// headers, AMQP message headers). The body is passed through unchanged.
package envelope
