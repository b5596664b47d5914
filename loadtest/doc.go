// Package loadtest is syncgate's load generator: it drives an operation (one
// HTTP request, or a request followed by polling until its result is there)
// either open loop, at a constant rate, or closed loop, from N workers, and
// reports latency percentiles from HDR histograms, throughput, errors and
// status codes as JSON, a Markdown table and plots.
//
// Open loop is the mode to size a deployment with: request i is due at
// start + i/rate whatever happened to the ones before it, and its latency is
// measured from that intended send time, not from when it was actually sent.
// A stalled server therefore shows up as the queueing delay every caller
// would have seen, instead of being hidden by the generator slowing down
// (coordinated omission). Closed loop measures capacity: each worker sends
// its next request as soon as the previous one is answered.
//
// Every run is bounded by a duration and optionally a request count; the
// warm-up that precedes it is not recorded, nor counted by the progress
// lines (their last one equals the table's count). The latency-over-time
// series has about fifty buckets whatever the duration. Plots are SVG, PNG
// or PDF by file extension, with the legend under the axes, clear of the
// title, the tick labels and the data. cmd/loadtest runs it against any
// URL and runs the scenarios of package loadtest/scenario.
package loadtest
