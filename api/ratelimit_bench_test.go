package api

import (
	"bytes"
	"log/slog"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/syncgate/syncgate/api/middleware"
	"github.com/syncgate/syncgate/gateway"
	"github.com/syncgate/syncgate/ratelimit"
)

// BenchmarkRateLimitInProcess measures the full stack in process with
// API-key auth, without and with a rate limit that never refuses (the
// in-memory limiter, one principal: its mutex is the contended case).
func BenchmarkRateLimitInProcess(b *testing.B) {
	rt := Route{Method: "POST", Path: "/orders/{id}", MaxBody: 1 << 20,
		Route: &gateway.Route{Name: "orders", Destination: "orders", Mode: gateway.ModeAuto, Timeout: time.Second}}
	keys, err := middleware.NewAPIKeys([]middleware.APIKeyHash{
		{Principal: "alice", SHA256: "23126898a939dbada8c4901583de6ccdf2878683d0d6a452a8f21b0a97c44152"},
	})
	if err != nil {
		b.Fatal(err)
	}
	payload := []byte(`{"order":42,"amount":"12.50"}`)
	for name, limit := range map[string]*ratelimit.Limit{"none": nil, "memory": {Rate: 1 << 30, Per: time.Second, Burst: 1 << 30}} {
		h, err := New(Options{Gateway: echoGateway{}, Routes: []Route{rt}, Logger: slog.New(slog.DiscardHandler), Auth: keys, RateLimit: limit})
		if err != nil {
			b.Fatal(err)
		}
		b.Run(name, func(b *testing.B) {
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					req := httptest.NewRequest("POST", "/orders/1", bytes.NewReader(payload))
					req.Header.Set("Authorization", "Bearer alice-demo-key-8f3b2a")
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					if rec.Code != 200 {
						b.Fatal(rec.Code)
					}
				}
			})
		})
	}
}
