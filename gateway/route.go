package gateway

import (
	"fmt"
	"strconv"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
)

// Mode says what a route does when the reply is slow.
type Mode string

const (
	// ModeSync waits up to the route's timeout, then fails with ErrTimeout
	// (504). For callers that hold one connection and cannot poll.
	ModeSync Mode = "sync"
	// ModeAsync answers 202 Accepted at once; the client polls.
	ModeAsync Mode = "async"
	// ModeAuto waits up to the route's wait, then answers 202 Accepted.
	ModeAuto Mode = "auto"
)

// ParseMode validates a mode name; empty means ModeAuto.
func ParseMode(s string) (Mode, error) {
	switch Mode(s) {
	case "":
		return ModeAuto, nil
	case ModeSync, ModeAsync, ModeAuto:
		return Mode(s), nil
	}
	return "", fmt.Errorf("gateway: unknown mode %q (want sync, async or auto)", s)
}

// Route is one configured endpoint as the use case sees it.
type Route struct {
	Name        string
	Destination string        // topic or queue the request is published to
	Mode        Mode          //
	Wait        time.Duration // auto: how long to hold the connection before 202
	Timeout     time.Duration // total budget: sync answers 504 after it; a pending poll expires after it
	// MaxWait caps Prefer: wait on auto routes (0: the timeout is the cap).
	MaxWait time.Duration
	// RequireKey makes an Idempotency-Key mandatory (ErrKeyRequired).
	RequireKey bool
	// Profile adds another ecosystem's headers to the route's requests
	// (envelope.Profile); "" and syncgate add none.
	Profile envelope.Profile
	// CallbackWindow is how long the delivery of a request's callback is
	// retried, from when it was accepted; 0: the route takes no
	// callbacks (Request.Callback).
	CallbackWindow time.Duration
	// Outbox queues a request the broker does not take (unavailable,
	// timed out) in Config.Outbox and answers 202, instead of 503. Async
	// and auto routes only, and not with Parts.
	Outbox bool
	// Parts, when set, make the route scatter-gather: each request is
	// published to every part's destination (Destination is unused), and
	// answered with one document of the parts' replies once Gather
	// decides (see gather.go). Names are unique.
	Parts []Part
	// Gather is the rule of a scatter-gather route ("": GatherAll);
	// Quorum is how many 2xx parts GatherQuorum needs (1..len(Parts)).
	Gather Gather
	Quorum int
}

// Pollable reports whether the route may answer 202 Accepted.
func (r *Route) Pollable() bool { return r.Mode != ModeSync }

// Preferences are the client's RFC 7240 preferences.
type Preferences struct {
	RespondAsync bool          // Prefer: respond-async
	Wait         time.Duration // Prefer: wait=N; 0 when absent
}

// plan decides how long to hold the connection and whether to answer 202 at
// once, within the route's limits, and what Preference-Applied says.
func (r *Route) plan(p Preferences) (wait time.Duration, async bool, applied string) {
	switch r.Mode {
	case ModeSync:
		// Callers of sync routes cannot poll: preferences cannot shorten the
		// wait into a 202 or an early 504.
		return r.Timeout, false, ""
	case ModeAsync:
		if p.RespondAsync {
			applied = "respond-async"
		}
		return 0, true, applied
	}
	switch {
	case p.RespondAsync:
		return 0, true, "respond-async"
	case p.Wait > 0:
		wait = min(p.Wait, r.Timeout)
		if r.MaxWait > 0 {
			wait = min(wait, r.MaxWait)
		}
		secs := int64(wait / time.Second)
		if wait%time.Second != 0 {
			secs++ // Prefer: wait is in whole seconds (RFC 7240 §4.3)
		}
		return wait, false, "wait=" + strconv.FormatInt(secs, 10)
	}
	return min(r.Wait, r.Timeout), false, ""
}
