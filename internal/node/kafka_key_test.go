package node_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/brokers/kafka"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// A route's key template keys its Kafka records: every request for one
// order (the path parameter) or one customer (a JSON body member) lands
// on one partition, in the order it was sent, with the key the template
// builds; requests of different entities spread over the partitions.
// A request without the value is refused and publishes nothing.
func TestKafkaRouteKeyOrdersPerEntity(t *testing.T) {
	port := testenv.FreePort(t)
	const topic, partitions = "orders", 4
	kf, err := kfake.NewCluster(kfake.Ports(port), kfake.NumBrokers(1), kfake.SeedTopics(partitions, topic))
	if err != nil {
		t.Fatal(err)
	}
	defer kf.Close()
	addr := "127.0.0.1:" + strconv.Itoa(port)

	cfg := node.Embedded()
	cfg.Addr = "127.0.0.1:0"
	cfg.Node = "key-" + strconv.Itoa(port)
	cfg.Demo.Enabled = false
	cfg.Broker.Kind = "kafka"
	cfg.Broker.Kafka = kafka.Config{Brokers: []string{addr}}
	cfg.Shutdown.ReadinessDelay = time.Millisecond
	cfg.Routes = []node.RouteConfig{
		{Name: "order", Method: "PUT", Path: "/orders/{id}", Destination: topic, Mode: "async", Key: "order-${params.id}"},
		{Name: "pay", Method: "POST", Path: "/pay", Destination: topic, Mode: "async", Key: "customer-${body#/customer/id}"},
	}
	n := start(t, cfg)
	client := &http.Client{Timeout: 10 * time.Second}
	t.Cleanup(client.CloseIdleConnections)
	send := func(method, path, body string) int {
		t.Helper()
		req, _ := http.NewRequest(method, n.base+path, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}

	// Interleaved: 8 orders and 8 customers, 6 requests each.
	want := map[string][]string{} // key → bodies in the order sent
	for seq := range 6 {
		for e := range 8 {
			body := fmt.Sprintf(`{"seq":%d,"customer":{"id":%d}}`, seq, e)
			if code := send("PUT", fmt.Sprintf("/orders/%d", e), body); code != http.StatusAccepted {
				t.Fatalf("PUT /orders/%d: %d", e, code)
			}
			want[fmt.Sprintf("order-%d", e)] = append(want[fmt.Sprintf("order-%d", e)], body)
			if code := send("POST", "/pay", body); code != http.StatusAccepted {
				t.Fatalf("POST /pay: %d", code)
			}
			want[fmt.Sprintf("customer-%d", e)] = append(want[fmt.Sprintf("customer-%d", e)], body)
		}
	}
	if code := send("POST", "/pay", `{"customer":{}}`); code != http.StatusBadRequest {
		t.Fatalf("POST /pay without customer.id: %d, want 400", code)
	}

	// Read every partition to its end.
	got := map[string][]string{}
	partOf := map[string]int{}
	total := 0
	ctx, cancel := context.WithTimeout(t.Context(), 20*time.Second)
	defer cancel()
	for p := range partitions {
		conn, err := kafkago.DialLeader(ctx, "tcp", addr, topic, p)
		if err != nil {
			t.Fatal(err)
		}
		last, err := conn.ReadLastOffset()
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for off := int64(0); off < last; {
			m, err := conn.ReadMessage(1 << 20)
			if err != nil {
				t.Fatalf("partition %d at %d of %d: %v", p, off, last, err)
			}
			off = m.Offset + 1
			k := string(m.Key)
			if q, seen := partOf[k]; seen && q != p {
				t.Errorf("key %s on partitions %d and %d", k, q, p)
			}
			partOf[k] = p
			got[k] = append(got[k], string(m.Value))
			total++
		}
		conn.Close()
	}
	if total != 8*6*2 {
		t.Errorf("%d records, want %d (the refused request must publish nothing)", total, 8*6*2)
	}
	for k, bodies := range want {
		if !slices.Equal(got[k], bodies) {
			t.Errorf("key %s: records %v, want %v in this order", k, got[k], bodies)
		}
	}
	used := map[int]bool{}
	for _, p := range partOf {
		used[p] = true
	}
	if len(used) < 2 {
		t.Errorf("16 keys on %d partition(s): the keys should spread", len(used))
	}
}
