package rabbitmq_test

import (
	"log"
	"os"

	amqp "github.com/rabbitmq/amqp091-go"
)

// AMQP_DEBUG=1 turns on amqp091-go's own log (connection and recovery
// events) while debugging a test.
func init() {
	if os.Getenv("AMQP_DEBUG") != "" {
		amqp.SetLogger(log.New(os.Stderr, "amqp: ", log.Lmicroseconds))
	}
}
