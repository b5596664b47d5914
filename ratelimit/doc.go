// Package ratelimit holds the gateway's rate limits per caller: a Limit
// (rate per period, with a burst), the Limiter port that decides one
// request at a time, and Memory, the limiter of a node alone (a token
// bucket per key from golang.org/x/time/rate, idle keys evicted).
// ratelimit/redislimit is the limiter that holds across the nodes of a
// cluster; ratelimit/ratelimittest is the suite both pass.
package ratelimit
