package ratelimit

import (
	"context"
	"fmt"
	"time"
)

// Limit admits Rate requests per Per on average, and up to Burst at once:
// a token bucket of Burst tokens refilled at Rate per Per (the generic cell
// rate algorithm gives the same answers). Over any window w a key is
// admitted at most Burst + Rate*w/Per requests.
type Limit struct {
	Rate  int
	Per   time.Duration
	Burst int
}

// Validate reports a limit no limiter can enforce.
func (l Limit) Validate() error {
	switch {
	case l.Rate < 1:
		return fmt.Errorf("rate %d: must be at least 1", l.Rate)
	case l.Per <= 0:
		return fmt.Errorf("per %s: must be positive", l.Per)
	case l.Burst < 1:
		return fmt.Errorf("burst %d: must be at least 1", l.Burst)
	}
	return nil
}

// interval is the time one token takes to come back.
func (l Limit) interval() time.Duration { return l.Per / time.Duration(l.Rate) }

// Decision is a limiter's answer for one request.
type Decision struct {
	Allowed bool
	// Remaining is how many more requests would be admitted right now.
	Remaining int
	// RetryAfter is, when not Allowed, how long until one request would be.
	RetryAfter time.Duration
	// ResetAfter is how long until the key's bucket is full again.
	ResetAfter time.Duration
}

// Limiter decides whether the request counted against key is admitted
// under l, and counts it when it is. A key is always used with the same
// limit. An error means no decision was made.
type Limiter interface {
	Allow(ctx context.Context, key string, l Limit) (Decision, error)
}
