package clustertest

import (
	"context"
	"fmt"
	"io"
	"maps"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/internal/testenv"
)

// cluster is one broker, one Redis deployment and syncgate nodes sharing
// them, all on loopback, stopped when the test ends. The Redis is a private
// redis-server, or the test binary's Sentinel set or Redis Cluster
// (internal/redistest), where the test's keys have a prefix of their own.
//
// Tests name nodes "a", "b", "c"; a node's id in the cluster carries a
// suffix unique to the test (nodeID), and so do its reply address and, on
// the shared RabbitMQ server, every queue of the test.
type cluster struct {
	t        *testing.T
	on       backend
	suffix   string   // of the node ids and the broker names
	kafka    []string // kfake's addresses, on Kafka
	requests string   // the destination of every route
	rk       redisKind
	redis    *redisServer // the private server, with redisPrivate
	dir      string
	config   string // the nodes' configuration file
	addrs    map[string]string
	nodes    map[string]*node
	http     *http.Client
	started  int    // node processes started, for log file names
	extra    string // YAML sections added to the nodes' configuration
	routes   string // YAML list items added to the routes (${requests}: the request destination)
}

// node is one syncgate process.
type node struct {
	id   string
	addr string // host:port
	proc *process
}

// URL returns the node's base URL.
func (n *node) URL() string { return "http://" + n.addr }

// newCluster starts kfake, a private Redis and one syncgate process per id
// in ids, and returns once every node is ready.
func newCluster(t *testing.T, ids ...string) *cluster {
	t.Helper()
	return newClusterOn(t, onKafka, ids...)
}

// newClusterOn is newCluster on the given backend. A test on RabbitMQ must
// hold the shared server already (useRabbitMQ, as onEachBackend does).
func newClusterOn(t *testing.T, on backend, ids ...string) *cluster {
	t.Helper()
	return newClusterWith(t, on, "", ids...)
}

// newClusterWith is newClusterOn with extra YAML sections (before routes)
// in the nodes' configuration.
func newClusterWith(t *testing.T, on backend, extra string, ids ...string) *cluster {
	t.Helper()
	return newClusterFull(t, on, redisPrivate, extra, "", ids...)
}

// newClusterRedis is newClusterOn on the Redis deployment rk.
func newClusterRedis(t *testing.T, on backend, rk redisKind, ids ...string) *cluster {
	t.Helper()
	return newClusterFull(t, on, rk, "", "", ids...)
}

// newClusterRoutes is newCluster with more routes (YAML list items).
func newClusterRoutes(t *testing.T, routes string, ids ...string) *cluster {
	t.Helper()
	return newClusterFull(t, onKafka, redisPrivate, "", routes, ids...)
}

func newClusterFull(t *testing.T, on backend, rk redisKind, extra, routes string, ids ...string) *cluster {
	t.Helper()
	c := newClusterState(t, on, rk, extra, routes, ids...)
	c.setUpBroker(ids)
	c.config = filepath.Join(c.dir, "cluster.yaml")
	if err := os.WriteFile(c.config, []byte(c.yaml()), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		c.nodes[id] = c.start(id, nil)
	}
	for _, id := range ids {
		c.waitReady(c.nodes[id])
	}
	return c
}

// newClusterState is a cluster of nodes ids, with their addresses, not
// started, on no broker yet; with its own Redis when rk is redisPrivate.
func newClusterState(t *testing.T, on backend, rk redisKind, extra, routes string, ids ...string) *cluster {
	t.Helper()
	var redis *redisServer
	if rk == redisPrivate {
		redis = startRedis(t)
	}
	c := &cluster{
		t: t, on: on, rk: rk, suffix: fmt.Sprintf("%08x", rand.Uint32()), redis: redis, dir: t.TempDir(), extra: extra, routes: routes,
		addrs: make(map[string]string), nodes: make(map[string]*node),
		http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 256}, Timeout: 90 * time.Second},
	}
	t.Cleanup(c.http.CloseIdleConnections)
	for _, id := range ids {
		c.addrs[id] = "127.0.0.1:" + strconv.Itoa(testenv.FreePort(t))
	}
	return c
}

// nodeID is the id node id runs under (--node): the test's name for it
// plus the test's suffix.
func (c *cluster) nodeID(id string) string { return id + "-" + c.suffix }

// replyAddr is node id's reply address, the default of internal/node.
func (c *cluster) replyAddr(id string) string { return "syncgate.reply." + c.nodeID(id) }

// owner returns the test's name of the node that sent req (its reply_to).
func (c *cluster) owner(req envelope.Request) string {
	id := strings.TrimPrefix(req.ReplyTo, "syncgate.reply.")
	return strings.TrimSuffix(id, "-"+c.suffix)
}

// leaseTTL is the nodes' cluster.lease_ttl: a dead node's id is free, and
// its reply address adopted, within about this long (and one more round
// of the adopters, as often).
const leaseTTL = 2 * time.Second

// Routes of the test configuration, all to the cluster's request
// destination.
const (
	routeEcho     = "/echo"      // auto, waits up to 20s: answered with the reply
	routeEchoSync = "/echo-sync" // sync, 30s
	routeBrief    = "/brief"     // auto, waits 1s: a late reply is polled
	routeStrict   = "/strict"    // sync, 2s: a late reply is a 504
)

// yaml is the nodes' configuration, as an operator would write it: one
// file for every node, the listen address picked by --node.
func (c *cluster) yaml() string {
	var addrs strings.Builder
	for _, id := range slices.Sorted(maps.Keys(c.addrs)) {
		fmt.Fprintf(&addrs, "    %s: %s\n", c.nodeID(id), c.addrs[id])
	}
	return fmt.Sprintf(`log:
  level: warn
%scluster:
  enabled: true
  redis:
%s  lease_ttl: %s
  claim_margin: 5s
  addrs:
%sshutdown:
  readiness_delay: 10ms
  drain_timeout: 1s
%sroutes:
  - {name: echo, method: POST, path: %s, destination: %s, mode: auto, wait: 20s, timeout: 30s}
  - {name: echo-sync, method: POST, path: %s, destination: %s, mode: sync, timeout: 30s}
  - {name: brief, method: POST, path: %s, destination: %s, mode: auto, wait: 1s, timeout: 30s}
  - {name: strict, method: POST, path: %s, destination: %s, mode: sync, timeout: 2s}
%s`, c.brokerYAML(), c.redisYAML(), leaseTTL, addrs.String(), c.extra,
		routeEcho, c.requests, routeEchoSync, c.requests, routeBrief, c.requests, routeStrict, c.requests,
		strings.ReplaceAll(c.routes, "${requests}", c.requests))
}

// start runs a syncgate process as node id, with extra flags.
func (c *cluster) start(id string, extra []string) *node {
	c.t.Helper()
	c.started++
	name := fmt.Sprintf("node-%s-%d", id, c.started)
	args := append([]string{"--config", c.config, "--node", c.nodeID(id)}, extra...)
	p := startProcess(c.t, name, filepath.Join(c.dir, name+".log"), binary, args...)
	return &node{id: id, addr: c.addrs[id], proc: p}
}

// waitReady returns once n's /readyz answers 200 and nothing degraded, failing the test
// if n exits first or takes longer than a minute.
func (c *cluster) waitReady(n *node) {
	c.t.Helper()
	testenv.Eventually(c.t, time.Minute, "node "+n.id+" is ready", func() bool {
		if n.proc.Exited() {
			c.t.Fatalf("node %s exited before it was ready: %v\n%s", n.id, n.proc.Err(), n.proc.Tail(30))
		}
		status, body, err := c.get(n, "/readyz")
		return err == nil && status == http.StatusOK && body == "ok\n" // not "ready (degraded)"
	})
}

// Node returns the node with id.
func (c *cluster) Node(id string) *node { return c.nodes[id] }

// Restart starts node id again (after it was killed), on the same address,
// and returns once it is ready.
func (c *cluster) Restart(id string) *node {
	c.t.Helper()
	n := c.start(id, nil)
	c.nodes[id] = n
	c.waitReady(n)
	return n
}

// get fetches path from n.
func (c *cluster) get(n *node, path string) (int, string, error) {
	return c.send(http.MethodGet, n, path)
}

// send sends a request without a body to path on n.
func (c *cluster) send(method string, n *node, path string) (int, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, n.URL()+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// response is what a node answered.
type response struct {
	status int
	id     string // X-Correlation-Id
	body   string
	header http.Header
}

// post sends body to path on n with the given extra headers.
func (c *cluster) post(ctx context.Context, n *node, path, body string, header ...string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.URL()+path, strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("Content-Type", "text/plain")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return response{}, err
	}
	return response{status: resp.StatusCode, id: resp.Header.Get("X-Correlation-Id"), body: string(b), header: resp.Header}, nil
}

// poll long-polls request id on n until it is no longer pending (at most
// three waits of 10s).
func (c *cluster) poll(n *node, id string) (int, string) {
	c.t.Helper()
	for range 3 {
		status, body, err := c.get(n, "/v1/requests/"+id+"?wait=10s")
		if err != nil {
			c.t.Fatalf("poll %s on node %s: %v", id, n.id, err)
		}
		if status != http.StatusAccepted {
			return status, body
		}
	}
	return http.StatusAccepted, ""
}
