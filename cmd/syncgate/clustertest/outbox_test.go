package clustertest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/syncgate/syncgate/internal/testenv"
)

// TestOutboxTakeover is issue 21's cluster case: node a, whose outbox
// relay leads (it holds the PostgreSQL advisory lock), queues requests the
// broker does not take and is killed with -9 with all of them still in
// the table; node b's relay takes the lead and, once the broker is back,
// publishes every one of them.
//
// Kafka (kfake, with a data directory) is stopped before the requests:
// all of them are answered 202 "queued" by a, and a poll on b says
// "queued" too (the record is in Redis, the row in PostgreSQL). a is
// killed; its session ends, so its lock goes to b's relay, which cannot
// publish yet. The broker comes back on the same port with its data;
// b's relay publishes the queue; the service answers each request to a's
// reply address (what the request carries), which b adopts; every poll on
// b ends in 200 with the request's own body. The service saw each request
// once, and b's syncgate_outbox_published_total counts all of them.
func TestOutboxTakeover(t *testing.T) {
	const requests = 200
	pgURL := testenv.RequirePostgres(t)
	// Before the cluster: dropped after the nodes were killed.
	table := testenv.PostgresTable(t, pgURL, "clustertest_outbox")
	lock := newOutboxLock(t, pgURL, table)
	broker := startOutboxKafka(t)

	routes := "  - {name: queue, method: POST, path: " + routeQueue + ", destination: ${requests}, mode: auto, wait: 5s, timeout: 1m, outbox: true}\n"
	extra := fmt.Sprintf("outbox:\n  store: postgres\n  url: %q\n  table: %s\n  retry: 200ms\n  poll: 100ms\n", pgURL, table)
	c := newOutboxCluster(t, broker.addrs(), extra, routes, "a", "b")

	// a alone first: its relay takes the lead. b's relay follows.
	a := c.startNode("a")
	var leaderA int32
	testenv.Eventually(t, 30*time.Second, "node a's relay takes the outbox's lock", func() bool {
		leaderA = lock.holder(t)
		return leaderA != 0
	})
	b := c.startNode("b")
	svc := startService(t, c, answerToOwner)
	// b's relay has had rounds of its own by now (every 100ms): the lock
	// stays with a.
	if got := lock.holder(t); got != leaderA {
		t.Fatalf("the outbox's lock is held by backend %d once b runs, want a's (%d)", got, leaderA)
	}

	broker.Stop()

	// Every request to a is answered 202 queued.
	ctx, cancel := context.WithTimeout(t.Context(), 3*time.Minute)
	defer cancel()
	sent, slowest := postQueued(t, ctx, c, a, requests)
	t.Logf("%d requests answered 202 queued by node a with the broker down (slowest %v)", len(sent), slowest.Round(time.Millisecond))
	if len(sent) != requests {
		t.FailNow()
	}
	if n := lock.rows(t); n != requests {
		t.Fatalf("the outbox table holds %d rows, want %d", n, requests)
	}
	// The poll on b says queued: b reads a's record and the shared table.
	for id := range sent {
		status, body, err := c.get(b, "/v1/requests/"+id)
		if err != nil || status != http.StatusAccepted || pendingStatus(body) != "queued" {
			t.Fatalf("poll %s on node b with the broker down: %d %q %v, want 202 queued", id, status, body, err)
		}
	}
	ma := c.scrape(a)
	if q, p := ma.value("syncgate_outbox_queued_total"), ma.value("syncgate_outbox_published_total"); q != requests || p != 0 {
		t.Fatalf("node a queued %.0f and published %.0f, want %d and 0", q, p, requests)
	}

	// kill -9: a's session ends with it, and b's relay takes the lock.
	a.proc.Kill()
	killed := time.Now()
	testenv.Eventually(t, 30*time.Second, "node b's relay takes the outbox's lock after a was killed", func() bool {
		h := lock.holder(t)
		return h != 0 && h != leaderA
	})
	took := time.Since(killed)
	if n := lock.rows(t); n != requests {
		t.Fatalf("the outbox table holds %d rows once b leads with the broker still down, want %d", n, requests)
	}

	broker.Start()
	replies := pollAll(t, ctx, c, b, sent)
	t.Logf("node a killed; b's relay led %v later; every poll on b answered 200 %v after the broker was back",
		took.Round(time.Millisecond), replies.Round(time.Millisecond))
	// Well within the relays' 30s lease: what a had claimed when it died
	// was freed when b took the lead, not left to its lease (and a's
	// reply address adopted within adoptedWithin).
	if replies > 25*time.Second {
		t.Errorf("the polls on b were answered %v after the broker was back, want within 25s", replies.Round(time.Millisecond))
	}

	// Each request was published once, by b.
	for id := range sent {
		if n := svc.SeenID(id); n != 1 {
			t.Errorf("the service saw %s %d times, want once", id, n)
		}
	}
	if distinct, repeated := svc.Seen(); distinct != requests || repeated != 0 {
		t.Errorf("the service saw %d distinct requests, %d more than once; want %d, none twice", distinct, repeated, requests)
	}
	mb := c.scrape(b)
	for _, x := range []struct {
		name string
		want float64
	}{
		{"syncgate_outbox_published_total", requests},
		{"syncgate_outbox_queued_total", 0},
		{"syncgate_outbox_expired_total", 0},
		{"syncgate_outbox_depth", 0},
	} {
		if got := mb.value(x.name); got != x.want {
			t.Errorf("node b: %s %.0f, want %.0f", x.name, got, x.want)
		}
	}
	if n := lock.rows(t); n != 0 {
		t.Errorf("the outbox table holds %d rows once every request was answered, want 0", n)
	}
	t.Logf("node b adopts %.0f node(s); its counts: %v", c.adopted(b), c.counts(b))
}

// routeQueue is the route with an outbox of TestOutboxTakeover.
const routeQueue = "/queue"

// postQueued sends n requests to routeQueue on node n, 16 at a time, and
// returns the correlation ids of those answered 202 "queued" with their
// Location (each other answer is an error of t), with their bodies, and
// the slowest answer.
func postQueued(t *testing.T, ctx context.Context, c *cluster, n *node, count int) (map[string]string, time.Duration) {
	t.Helper()
	var (
		mu      sync.Mutex
		sent    = make(map[string]string, count)
		slowest time.Duration
		work    = make(chan int)
		wg      sync.WaitGroup
	)
	for range 16 {
		wg.Go(func() {
			for i := range work {
				start := time.Now()
				resp, err := c.post(ctx, n, routeQueue, body(i))
				took := time.Since(start)
				switch {
				case err != nil:
					t.Errorf("request %d on node %s: %v", i, n.id, err)
					continue
				case resp.status != http.StatusAccepted || pendingStatus(resp.body) != "queued" ||
					resp.id == "" || resp.header.Get("Location") != "/v1/requests/"+resp.id:
					t.Errorf("request %d on node %s with the broker down: %d %q (Location %q); want 202 queued with the poll location",
						i, n.id, resp.status, resp.body, resp.header.Get("Location"))
					continue
				}
				mu.Lock()
				sent[resp.id] = body(i)
				slowest = max(slowest, took)
				mu.Unlock()
			}
		})
	}
	for i := range count {
		work <- i
	}
	close(work)
	wg.Wait()
	return sent, slowest
}

// pollAll long-polls every request of sent on n, 32 at a time, until each
// is answered (at most two minutes in all), checks that each ends in 200
// with its own body, and returns how long that took.
func pollAll(t *testing.T, ctx context.Context, c *cluster, n *node, sent map[string]string) time.Duration {
	t.Helper()
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	ids := make(chan string)
	var wg sync.WaitGroup
	for range 32 {
		wg.Go(func() {
			for id := range ids {
				for {
					if ctx.Err() != nil || time.Now().After(deadline) {
						t.Errorf("poll %s on node %s: not answered within 2m of the broker's return", id, n.id)
						break
					}
					status, got, err := c.get(n, "/v1/requests/"+id+"?wait=5s")
					if err != nil {
						t.Errorf("poll %s on node %s: %v", id, n.id, err)
						break
					}
					if status == http.StatusAccepted {
						continue // queued or pending: the long poll waited, poll again
					}
					if status != http.StatusOK || got != sent[id] {
						t.Errorf("poll %s on node %s: %d %q, want 200 %q", id, n.id, status, got, sent[id])
					}
					break
				}
			}
		})
	}
	for id := range sent {
		ids <- id
	}
	close(ids)
	wg.Wait()
	return time.Since(start)
}

// pendingStatus is the status of a 202's JSON body ("pending", "queued").
func pendingStatus(body string) string {
	var pb struct {
		Status string `json:"status"`
	}
	_ = json.Unmarshal([]byte(body), &pb)
	return pb.Status
}

// outboxKafka is a kfake cluster with a data directory that the test
// stops and starts again on the same port, as a broker restarted with its
// logs: topics, records and committed offsets are back.
type outboxKafka struct {
	t    *testing.T
	dir  string
	port int
	kf   *kfake.Cluster
}

// outboxRequests is the request topic of the cluster, as in setUpBroker.
const outboxRequests = "clustertest.requests"

func startOutboxKafka(t *testing.T) *outboxKafka {
	t.Helper()
	k := &outboxKafka{t: t, dir: t.TempDir(), port: testenv.FreePort(t)} // the directory outlives the cluster
	k.start(kfake.SeedTopics(4, outboxRequests))
	return k
}

func (k *outboxKafka) addrs() []string {
	return []string{net.JoinHostPort("127.0.0.1", strconv.Itoa(k.port))}
}

// Stop closes the broker: clients' connections and new ones are refused.
func (k *outboxKafka) Stop() { k.kf.Close() }

// Start starts the broker again on its port, with its data.
func (k *outboxKafka) Start() { k.start() }

func (k *outboxKafka) start(opts ...kfake.Opt) {
	t := k.t
	t.Helper()
	opts = append([]kfake.Opt{kfake.NumBrokers(1), kfake.Ports(k.port), kfake.DataDir(k.dir),
		kfake.BrokerConfigs(map[string]string{"message.max.bytes": strconv.Itoa(2 << 20)})}, opts...)
	var err error
	// The old listener's port may take a moment to be free again.
	for range 100 {
		if k.kf, err = kfake.NewCluster(opts...); err == nil {
			t.Cleanup(k.kf.Close) // idempotent
			return
		}
		time.Sleep(100 * time.Millisecond) // bounded: 100 tries
	}
	t.Fatalf("kfake on port %d: %v", k.port, err)
}

// newOutboxCluster is newClusterFull on Kafka, on brokers run by the test
// (not setUpBroker's kfake, which the test cannot stop), with a private
// Redis. No node is started:
// startNode starts each.
func newOutboxCluster(t *testing.T, kafkaAddrs []string, extra, routes string, ids ...string) *cluster {
	t.Helper()
	c := newClusterState(t, onKafka, redisPrivate, extra, routes, ids...)
	c.kafka, c.requests = kafkaAddrs, outboxRequests
	// The cluster's publish_timeout (30 s) stays: a publish to a broker
	// that is down is refused at once, and a short one could give up the
	// relay's first publish once the broker is back while its produce is
	// under way (it would be published twice, which this test counts).
	yaml := c.yaml()
	c.config = filepath.Join(c.dir, "cluster.yaml")
	if err := os.WriteFile(c.config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	return c
}

// startNode starts node id and returns once it is ready.
func (c *cluster) startNode(id string) *node {
	c.t.Helper()
	n := c.start(id, nil)
	c.nodes[id] = n
	c.waitReady(n)
	return n
}

// outboxLock looks at a PostgreSQL outbox table and at the advisory lock
// its relays take (outbox.PG.Lead) from a connection of the test's own.
type outboxLock struct {
	conn  *pgx.Conn
	table string
	key   int64 // the lock's key: hashtext('syncgate_outbox:' || table)
}

func newOutboxLock(t *testing.T, url, table string) *outboxLock {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		testenv.Unavailable(t, "PostgreSQL at %s: %v", url, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	l := &outboxLock{conn: conn, table: table}
	if err := conn.QueryRow(ctx, `SELECT hashtext($1)::bigint`, "syncgate_outbox:"+table).Scan(&l.key); err != nil {
		t.Fatal(err)
	}
	return l
}

// holder returns the PostgreSQL backend pid holding the lock (0: nobody).
// A lock on one bigint key is in pg_locks as its high 32 bits (classid),
// its low 32 bits (objid) and objsubid 1.
func (l *outboxLock) holder(t *testing.T) int32 {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var pid int32
	err := l.conn.QueryRow(ctx, `SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1
		AND classid::bigint = (($1::bigint >> 32) & 4294967295) AND objid::bigint = ($1::bigint & 4294967295)`, l.key).Scan(&pid)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0
	}
	if err != nil {
		t.Fatalf("who holds the outbox's lock: %v", err)
	}
	return pid
}

// rows returns how many rows the table holds.
func (l *outboxLock) rows(t *testing.T) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	var n int
	if err := l.conn.QueryRow(ctx, `SELECT count(*) FROM `+pgx.Identifier{l.table}.Sanitize()).Scan(&n); err != nil {
		t.Fatalf("count the outbox's rows: %v", err)
	}
	return n
}
