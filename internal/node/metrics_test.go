package node_test

import (
	"net/http"
	"testing"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/syncgate/syncgate/api"
)

// scrape reads /metrics as Prometheus does and parses it.
func scrape(t *testing.T, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("scrape does not parse: %v", err)
	}
	return fams
}

// sample returns the value of the series of fam whose labels include want
// (counter, gauge, or a histogram's count); -1 when there is none.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) float64 {
	fam, ok := fams[name]
	if !ok {
		return -1
	}
	for _, m := range fam.GetMetric() {
		labels := map[string]string{}
		for _, l := range m.GetLabel() {
			labels[l.GetName()] = l.GetValue()
		}
		match := true
		for k, v := range want {
			if labels[k] != v {
				match = false
			}
		}
		if !match {
			continue
		}
		switch {
		case m.Counter != nil:
			return m.Counter.GetValue()
		case m.Gauge != nil:
			return m.Gauge.GetValue()
		case m.Histogram != nil:
			return float64(m.Histogram.GetSampleCount())
		}
	}
	return -1
}

func TestMetricsScrape(t *testing.T) {
	n := start(t, testConfig())
	for range 3 {
		if resp, _ := send(t, "POST", n.base+"/demo/echo", []byte("x"), nil); resp.StatusCode != 200 {
			t.Fatal(resp.StatusCode)
		}
	}
	resp, _ := send(t, "POST", n.base+"/demo/echo", []byte("x"), map[string]string{"Prefer": "respond-async"})
	loc := resp.Header.Get("Location")
	pollUntilDone(t, n.base, loc)
	send(t, "POST", n.base+"/t/sync?ms=1000", []byte("x"), nil) // 504, then an orphan reply
	send(t, "GET", n.base+api.PollPath+"0190f1c4-8a2b-7c3d-9e4f-5a6b7c8d9e0f", nil, nil)

	fams := scrape(t, n.base)
	for _, tt := range []struct {
		name   string
		labels map[string]string
		min    float64
	}{
		{"syncgate_http_requests_total", map[string]string{"route": "/demo/echo", "mode": "auto", "status": "200"}, 3},
		{"syncgate_http_requests_total", map[string]string{"route": "/demo/echo", "mode": "auto", "status": "202"}, 1},
		{"syncgate_http_requests_total", map[string]string{"route": "/t/sync", "mode": "sync", "status": "504"}, 1},
		{"syncgate_http_requests_total", map[string]string{"route": "/v1/requests/{id}", "status": "404"}, 1},
		{"syncgate_http_request_duration_seconds", map[string]string{"route": "/demo/echo", "mode": "auto"}, 4},
		{"syncgate_http_in_flight_requests", nil, 1}, // this scrape
		{"syncgate_waiting_requests", nil, 0},
		{"syncgate_publish_duration_seconds", map[string]string{"destination": "demo.echo", "result": "ok"}, 4},
		{"syncgate_broker_round_trip_seconds", map[string]string{"route": "echo"}, 3},
		{"syncgate_accepted_total", map[string]string{"route": "echo"}, 1},
		{"syncgate_polls_total", map[string]string{"result": "done"}, 1},
		{"syncgate_polls_total", map[string]string{"result": "not_found"}, 1},
		{"syncgate_replies_total", map[string]string{"outcome": "delivered"}, 3},
		{"syncgate_replies_total", map[string]string{"outcome": "stored"}, 1},
		{"syncgate_replies_total", map[string]string{"outcome": "invalid"}, 0},
		{"syncgate_replies_total", map[string]string{"outcome": "cancelled"}, 0},
	} {
		if got := sample(fams, tt.name, tt.labels); got < tt.min {
			t.Errorf("%s%v = %v, want >= %v", tt.name, tt.labels, got, tt.min)
		}
	}
	// Raw paths never become labels.
	for _, m := range fams["syncgate_http_requests_total"].GetMetric() {
		for _, l := range m.GetLabel() {
			if l.GetName() == "route" && l.GetValue() == loc {
				t.Errorf("raw path %s used as a label", loc)
			}
		}
	}
}
