// Package gateway is syncgate's use case: turn one request into a message,
// wait for the reply that carries its correlation id, and fall back to
// 202 Accepted (or 504 on routes whose callers cannot poll) when the reply
// does not come within the wait budget.
//
// It knows nothing of HTTP or of any broker SDK: it publishes through a
// Publisher, waits through a correlation.Registry, and parks late replies in
// a Store that any node can serve polls from. DispatchReply is the other half:
// the node's reply consumer hands every reply message to it.
package gateway
