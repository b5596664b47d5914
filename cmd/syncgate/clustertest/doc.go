// Package clustertest holds the multi-process tests of cluster mode: three
// real syncgate processes (cmd/syncgate, built once per run) on loopback
// ports, sharing one Kafka broker (kfake, in the test process) and a
// private redis-server (a child process per test, never the shared Redis
// on 6379, so that a test may kill it), with a test service that answers
// requests to whichever node's reply topic a test chooses.
//
// The tests check that a reply consumed by the wrong node still reaches the
// node holding its request (and, when the forward is lost, the store gives
// it); that a request accepted by a node that died or stopped is pollable
// on another; that a Redis restart neither crashes a node nor hands a reply
// to the wrong request; that a second process cannot take a live node's id;
// that Idempotency-Keys and cancellation work across nodes; and that every
// request published is accounted for in the nodes' metrics. The package
// has no code of its own; it needs the redis-server binary (the tests skip
// without it, and fail under CI=true). With -race the nodes are built with
// -race too, and a race they report fails the test.
package clustertest
