// Package clustertest holds the multi-process tests of cluster mode: three
// real syncgate processes (cmd/syncgate, built once per run) on loopback
// ports, sharing one broker and a private redis-server (a child process
// per test, never the shared Redis on 6379, so that a test may kill it);
// the core tests also run on a Sentinel set and on a Redis Cluster
// (internal/redistest), with a master failover under load on each,
// with a test service that answers requests to whichever node's reply
// address a test chooses. The broker is Kafka (kfake, in the test
// process); the tests that matter most for both networked backends run on
// the machine's shared RabbitMQ server too, as subtests, under names
// unique to the test (node ids, queues) that they delete at the end.
//
// The tests check that a reply consumed by the wrong node still reaches the
// node holding its request (and, when the forward is lost, the store gives
// it); that a request accepted by a node that died or stopped is pollable
// on another, including its replies addressed to the dead node, which
// another node adopts until it returns; that a Redis restart neither
// crashes a node nor hands a reply to the wrong request; that a second
// process cannot take a live node's id; that Idempotency-Keys and
// cancellation work across nodes; and that every request published is
// accounted for in the nodes' metrics. The package has no code of its own;
// it needs the redis-server binary, and RabbitMQ for its RabbitMQ
// subtests (they skip without them, and fail under CI=true). Tests on
// RabbitMQ hold it shared (rabbitmqtest.Shared), so that the outage tests
// of brokers/rabbitmq do not stop it under them. With -race the nodes are
// built with -race too, and a race they report fails the test.
package clustertest
