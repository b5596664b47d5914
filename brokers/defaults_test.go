package brokers_test

import (
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
)

func TestSetDefault(t *testing.T) {
	unset, set := "", "mine"
	brokers.SetDefault(&unset, "default")
	brokers.SetDefault(&set, "default")
	if unset != "default" || set != "mine" {
		t.Errorf("strings: unset = %q, set = %q; want %q, %q", unset, set, "default", "mine")
	}

	var zero time.Duration
	negative := -time.Second // not zero: a caller's choice, kept (and left to Validate)
	brokers.SetDefault(&zero, time.Minute)
	brokers.SetDefault(&negative, time.Minute)
	if zero != time.Minute || negative != -time.Second {
		t.Errorf("durations: zero = %v, negative = %v; want %v, %v", zero, negative, time.Minute, -time.Second)
	}
}
