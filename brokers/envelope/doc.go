// Package envelope is syncgate's wire contract: the headers a request carries
// to a service and the headers a service's reply must carry back. It encodes
// and decodes brokers.Message values and validates what comes back, so a reply
// with no or a malformed correlation id is rejected with a precise error
// instead of reaching the registry.
//
// Header names are lower case and identical on every backend (Kafka record
// headers, AMQP message headers); a header carried several times is one
// value, the values joined by "\n", each validated. The body is passed
// through unchanged. FailureReply builds the 502 problem reply that stands
// in for a reply that will not come (one refused here, or a dead-lettered
// request).
package envelope
