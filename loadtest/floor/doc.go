// Package floor holds the naive floors syncgate's load scenarios compare
// it with: what a user would write in an afternoon instead of running a
// gateway. Gateway is a net/http server that publishes each POST body
// (kafka-go Writer with a 1 ms BatchTimeout and leader acks, or amqp091-go
// with publisher confirms) and waits for the reply in a mutex-guarded map of
// channels; Echo is the service that answers it; EchoServer is the plain
// HTTP echo, the floor of the memory path. Each runs until its context
// ends.
//
// The floors speak syncgate's wire contract (brokers/envelope): requests
// carry correlation-id and reply-to, replies correlation-id and status, so
// Echo answers syncgate's gateway as well as Gateway, and syncgate's demo
// service answers Gateway. cmd/loadtest runs them as processes of their own
// (loadtest naive-gateway, naive-echo, echo-server), so a scenario can
// measure each one's CPU.
package floor
