package instrument_test

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/syncgate/syncgate/brokers"
	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/correlation"
	"github.com/syncgate/syncgate/gateway"
	"github.com/syncgate/syncgate/gateway/instrument"
)

// nowhere accepts every message and drops it.
type nowhere struct{}

func (nowhere) Publish(context.Context, string, brokers.Message) error { return nil }

// The node wraps the gateway's ports; the gateway itself counts nothing.
func Example() {
	reg := prometheus.NewRegistry()
	store := correlation.NewMemoryStore(correlation.MemoryStoreConfig{})
	gw := gateway.New(gateway.Config{ReplyTo: "replies", Logger: slog.New(slog.DiscardHandler)}, instrument.Publisher(nowhere{}, reg), store)
	defer gw.Close()
	replies := instrument.ReplyHandler(gw.DispatchReply, reg)
	api := instrument.Gateway(gw, reg) // what the HTTP layer calls

	route := &gateway.Route{Name: "orders", Destination: "orders", Mode: gateway.ModeAsync, Timeout: time.Minute}
	out, _ := api.Do(context.Background(), &gateway.Request{Route: route})
	_ = replies(context.Background(), envelope.Reply{CorrelationID: out.ID, Body: []byte("ok")}.Message())
	_ = replies(context.Background(), brokers.Message{}) // no correlation id

	fmt.Println("publishes:", value(reg, "syncgate_publish_duration_seconds", "orders"))
	fmt.Println("202s:", value(reg, "syncgate_accepted_total", "orders"))
	fmt.Println("stored replies:", value(reg, "syncgate_replies_total", "stored"))
	fmt.Println("invalid replies:", value(reg, "syncgate_replies_total", "invalid"))
	// Output:
	// publishes: 1
	// 202s: 1
	// stored replies: 1
	// invalid replies: 1
}

// value reads the series of name whose first label is label: a counter's
// value or a histogram's count.
func value(reg *prometheus.Registry, name, label string) float64 {
	fams, _ := reg.Gather()
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if m.GetLabel()[0].GetValue() != label {
				continue
			}
			if h := m.GetHistogram(); h != nil {
				return float64(h.GetSampleCount())
			}
			return m.GetCounter().GetValue()
		}
	}
	return -1
}
