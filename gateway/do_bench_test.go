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

// echoPublisher answers every request at once, from inside Publish, as
// the fastest possible service: what remains is the use case's own cost.
type echoPublisher struct{ gw *gateway.Gateway }

func (p *echoPublisher) Publish(ctx context.Context, _ string, m brokers.Message) error {
	req, err := envelope.DecodeRequest(m)
	if err != nil {
		return err
	}
	_, err = p.gw.DispatchReply(ctx, envelope.Reply{CorrelationID: req.CorrelationID, Status: 200, Body: req.Body}.Message())
	return err
}

// BenchmarkDo measures Gateway.Do per mode on one node, broker and
// service out of the picture (go test -run x -bench Do ./gateway).
func BenchmarkDo(b *testing.B) {
	for _, mode := range []gateway.Mode{gateway.ModeSync, gateway.ModeAuto, gateway.ModeAsync} {
		b.Run(string(mode), func(b *testing.B) {
			pub := &echoPublisher{}
			gw := gateway.New(gateway.Config{ReplyTo: "replies.bench"}, pub,
				correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: 1 << 24, MaxBytes: 1 << 40}))
			defer gw.Close()
			pub.gw = gw
			r := &gateway.Route{Name: "r", Destination: "svc", Mode: mode, Wait: time.Second, Timeout: 5 * time.Second}
			body := []byte(`{"order":42}`)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := gw.Do(context.Background(), &gateway.Request{Route: r,
						Message: envelope.Request{Method: "POST", Path: "/x", Body: body}}); err != nil {
						b.Fatal(err)
					}
				}
			})
		})
	}
}

// BenchmarkGather is BenchmarkDo's sync case for a scatter-gather route
// of 1 to 3 parts (and plain, the same route with one destination), so
// that the cost of a part is read as a ratio within one run:
// go test -run '^$' -bench Gather -count 5 ./gateway
func BenchmarkGather(b *testing.B) {
	cases := []struct {
		name  string
		parts int
	}{{"plain", 0}, {"parts=1", 1}, {"parts=2", 2}, {"parts=3", 3}}
	for _, tc := range cases {
		b.Run(tc.name, func(b *testing.B) {
			pub := &echoPublisher{}
			gw := gateway.New(gateway.Config{ReplyTo: "replies.bench"}, pub,
				correlation.NewMemoryStore(correlation.MemoryStoreConfig{MaxEntries: 1 << 24, MaxBytes: 1 << 40}))
			defer gw.Close()
			pub.gw = gw
			r := &gateway.Route{Name: "r", Destination: "svc", Mode: gateway.ModeSync, Timeout: 5 * time.Second}
			for i := range tc.parts {
				r.Parts = append(r.Parts, gateway.Part{Name: "p" + string(rune('a'+i)), Destination: "svc"})
			}
			body := []byte(`{"order":42}`)
			b.ReportAllocs()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					out, err := gw.Do(context.Background(), &gateway.Request{Route: r,
						Message: envelope.Request{Method: "POST", Path: "/x", Body: body}})
					if err != nil || out.Reply.Status != 200 {
						b.Fatal(out.Reply.Status, err)
					}
				}
			})
		})
	}
}
