// Package brokers defines the one message-broker abstraction every syncgate
// backend implements: a Message (key, headers, body), a Publisher that returns
// only once the broker holds the message, and a Subscriber that hands each
// message to a Handler and acknowledges it only when the handler succeeds.
//
// Backends live in sub-packages (brokers/memory, brokers/kafka,
// brokers/rabbitmq) and prove their behaviour by running the shared
// conformance suite in brokers/brokertest from their own tests.
package brokers
