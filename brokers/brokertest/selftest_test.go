package brokertest_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/brokertest"
	"github.com/syncgate/syncgate/brokers/memory"
)

// The suite passes a correct backend (the memory broker, with a publisher
// for an unreachable broker that honours its deadline).
func TestSuite(t *testing.T) {
	brokertest.Run(t, newSetup(""), brokertest.Features{
		Unreachable: func(*testing.T) brokers.Publisher { return unreachable{} },
	})
}

// defectEnv names the defect TestDefectiveBackend injects.
const defectEnv = "BROKERTEST_DEFECT"

// The suite fails a backend with a defect, in the subtest meant to catch it.
// Each case runs TestDefectiveBackend in a child process, since a failing
// subtest cannot be observed from within the same test binary.
func TestSuiteCatchesDefects(t *testing.T) {
	if testing.Short() {
		t.Skip("runs child processes")
	}
	for defect, subtest := range map[string]string{
		"drop-empty-header":      "Payloads",
		"flip-byte":              "Payloads",
		"alias-body":             "PublishCopiesMessage",
		"reorder":                "OrderPerKey",
		"ack-on-error":           "RedeliveryAfterHandlerError",
		"share-message-on-retry": "RedeliveryAfterHandlerError",
		"ack-on-cancel":          "RedeliveryAfterConsumerCrash",
		"ignore-group":           "CompetingConsumers",
		"duplicate":              "ConcurrentPublishers",
		"no-concurrency":         "Concurrency",
		"too-much-concurrency":   "Concurrency",
		"double-ready":           "Ready",
		"error-on-cancel":        "Cancellation",
		"background-handler-ctx": "Cancellation",
		"ignore-ctx":             "PublishCancelledContext",
		"closed-wrong-error":     "Close",
		"close-not-idempotent":   "Close",
		"unreachable-wrong-err":  "Unreachable",
	} {
		t.Run(defect, func(t *testing.T) {
			t.Parallel()
			cmd := exec.CommandContext(t.Context(), os.Args[0],
				"-test.run=^TestDefectiveBackend$/^"+subtest+"$", "-test.v", "-test.count=1", "-test.timeout=2m")
			cmd.Env = append(os.Environ(), defectEnv+"="+defect)
			out, err := cmd.CombinedOutput()
			if err == nil {
				t.Fatalf("the suite passed a backend with defect %s:\n%s", defect, out)
			}
			if !strings.Contains(string(out), "--- FAIL: TestDefectiveBackend/"+subtest+" ") {
				t.Fatalf("defect %s: subtest %s did not fail:\n%s", defect, subtest, out)
			}
		})
	}
}

// TestDefectiveBackend runs the suite against the memory broker with the
// defect named by $BROKERTEST_DEFECT; TestSuiteCatchesDefects starts it.
func TestDefectiveBackend(t *testing.T) {
	defect := os.Getenv(defectEnv)
	if defect == "" {
		t.Skip("run by TestSuiteCatchesDefects")
	}
	brokertest.Run(t, newSetup(defect), brokertest.Features{
		Timeout: 300 * time.Millisecond,
		Unreachable: func(*testing.T) brokers.Publisher {
			if defect == "unreachable-wrong-err" {
				return unreachable{err: errors.New("dial: connection refused")}
			}
			return unreachable{}
		},
	})
}

// newSetup returns one broker per subtest, with defect injected.
func newSetup(defect string) brokertest.Setup {
	var (
		mu  sync.Mutex
		byT = make(map[*testing.T]*defective)
	)
	return func(t *testing.T) (brokers.Publisher, brokers.Subscriber) {
		mu.Lock()
		defer mu.Unlock()
		b, ok := byT[t]
		if !ok {
			b = &defective{Broker: memory.New(memory.Config{RetryDelay: time.Millisecond}), defect: defect}
			byT[t] = b
		}
		return b, b
	}
}

// unreachable is a publisher for a broker that does not answer.
type unreachable struct{ err error }

func (u unreachable) Publish(ctx context.Context, dest string, _ brokers.Message) error {
	if u.err != nil {
		return u.err
	}
	<-ctx.Done()
	return fmt.Errorf("publish to %q: %w: %w", dest, brokers.ErrUnavailable, ctx.Err())
}

func (unreachable) Close() error { return nil }

// defective wraps the memory broker and breaks one property of it.
type defective struct {
	*memory.Broker
	defect string
	closes atomic.Int32
	bodies sync.Map // brokertest-id → the publisher's body slice (alias-body)
}

func (d *defective) Close() error {
	err := d.Broker.Close()
	if d.closes.Add(1) > 1 && d.defect == "close-not-idempotent" {
		return errors.New("already closed")
	}
	return err
}

func (d *defective) Publish(ctx context.Context, dest string, m brokers.Message) error {
	switch d.defect {
	case "drop-empty-header":
		m.Headers = maps.Clone(m.Headers)
		maps.DeleteFunc(m.Headers, func(_, v string) bool { return v == "" })
	case "flip-byte":
		if len(m.Body) == 256 {
			m.Body = append([]byte(nil), m.Body...)
			m.Body[200] = 0
		}
	case "alias-body":
		d.bodies.Store(m.Headers["brokertest-id"], m.Body)
	case "ignore-ctx":
		ctx = context.Background()
	case "closed-wrong-error":
		if err := d.Broker.Publish(ctx, dest, m); errors.Is(err, brokers.ErrClosed) {
			return errors.New("publisher closed")
		} else {
			return err
		}
	}
	return d.Broker.Publish(ctx, dest, m)
}

func (d *defective) Subscribe(ctx context.Context, source string, h brokers.Handler, opts ...brokers.SubscribeOption) error {
	cfg := brokers.NewSubscribeConfig(opts...)
	inner := h
	switch d.defect {
	case "alias-body":
		h = func(ctx context.Context, m brokers.Message) error {
			if b, ok := d.bodies.Load(m.Headers["brokertest-id"]); ok {
				m.Body = b.([]byte)
			}
			return inner(ctx, m)
		}
	case "reorder": // the first message of each key overtaken by the second
		var mu sync.Mutex
		held := make(map[string]*brokers.Message)
		h = func(ctx context.Context, m brokers.Message) error {
			mu.Lock()
			first, seen := held[m.Key]
			if !seen {
				held[m.Key] = &m
			} else {
				held[m.Key] = nil
			}
			mu.Unlock()
			if !seen {
				return nil
			}
			if err := inner(ctx, m); err != nil || first == nil {
				return err
			}
			return inner(ctx, *first)
		}
	case "ack-on-error":
		h = func(ctx context.Context, m brokers.Message) error { _ = inner(ctx, m); return nil }
	case "share-message-on-retry":
		var mu sync.Mutex
		first := make(map[string]brokers.Message)
		h = func(ctx context.Context, m brokers.Message) error {
			mu.Lock()
			if f, ok := first[m.Headers["brokertest-id"]]; ok {
				m = f
			} else {
				first[m.Headers["brokertest-id"]] = m
			}
			mu.Unlock()
			return inner(ctx, m)
		}
	case "ack-on-cancel":
		h = func(ctx context.Context, m brokers.Message) error {
			if err := inner(ctx, m); ctx.Err() == nil {
				return err
			}
			return nil
		}
	case "ignore-group":
		opts = append(opts, brokers.WithGroup(cfg.Group+fmt.Sprint(time.Now().UnixNano())))
	case "duplicate":
		h = func(ctx context.Context, m brokers.Message) error {
			if err := inner(ctx, m.Clone()); err != nil {
				return err
			}
			return inner(ctx, m)
		}
	case "no-concurrency":
		opts = append(opts, brokers.WithConcurrency(1))
	case "too-much-concurrency":
		opts = append(opts, brokers.WithConcurrency(2*cfg.Concurrency))
	case "double-ready":
		opts = append(opts, brokers.WithReady(func() { cfg.Ready(); cfg.Ready() }))
	case "background-handler-ctx":
		h = func(_ context.Context, m brokers.Message) error { return inner(context.Background(), m) }
	case "error-on-cancel":
		if err := d.Broker.Subscribe(ctx, source, h, opts...); err != nil {
			return err
		}
		return errors.New("subscription ended")
	}
	return d.Broker.Subscribe(ctx, source, h, opts...)
}
