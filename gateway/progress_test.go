package gateway_test

import (
	"context"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
)

type nopPublisher struct{}

func (nopPublisher) Publish(context.Context, string, brokers.Message) error { return nil }

// Progress messages of an accepted request are kept; one for an unknown
// id, one over MaxProgressBody and an invalid one are dropped, and none of
// them ends the request.
func TestDispatchProgress(t *testing.T) {
	ctx := context.Background()
	store := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
	gw := gateway.New(gateway.Config{ReplyTo: "r"}, nopPublisher{}, store)
	defer gw.Close()
	id := correlation.NewID()
	if err := store.Pending(ctx, id, "", time.Minute); err != nil {
		t.Fatal(err)
	}
	progress := func(id string, body []byte, extra map[string]string) gateway.ReplyOutcome {
		t.Helper()
		m := envelope.Reply{CorrelationID: id, Progress: true, ContentType: "text/plain", Body: body}.Message()
		for k, v := range extra {
			m.Headers[k] = v
		}
		out, err := gw.DispatchReply(ctx, m)
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	for _, tc := range []struct {
		name  string
		id    string
		body  []byte
		extra map[string]string
		want  gateway.ReplyOutcome
	}{
		{"kept", id, []byte("1/2"), nil, gateway.ReplyProgress},
		{"unknown id", correlation.NewID(), []byte("x"), nil, gateway.ReplyProgressIgnored},
		{"too large", id, make([]byte, gateway.MaxProgressBody+1), nil, gateway.ReplyProgressIgnored},
		{"invalid", id, []byte("x"), map[string]string{"status": "abc"}, gateway.ReplyProgressIgnored},
		{"at the limit", id, make([]byte, gateway.MaxProgressBody), nil, gateway.ReplyProgress},
	} {
		if got := progress(tc.id, tc.body, tc.extra); got != tc.want {
			t.Errorf("%s: %v, want %v", tc.name, got, tc.want)
		}
	}
	res, err := store.Events(ctx, id, 0)
	if err != nil || res.State != correlation.StatePending || res.Seq != 2 || string(res.Progress[0].Body) != "1/2" {
		t.Errorf("record after the progress messages: %+v, %v; want pending with 2", res, err)
	}
}
