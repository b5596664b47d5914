package scenario

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/internal/redistest"
	"github.com/syncgate/syncgate/loadtest"
)

// ClusterNodes is how many gateway nodes cluster-procs runs by default.
const ClusterNodes = 6

// ClusterProcs is the scaled-down run of docs/scaling.md: Options.Nodes
// gateway processes in cluster mode (default ClusterNodes) on a Redis
// Cluster of three masters and three replicas (redis-server children,
// internal/redistest), kafka-embedded and cmd/demo, with the load spread
// over the nodes round-robin, as a load balancer would. Besides latency
// and every process's CPU per request, it reads each Redis node's INFO
// before and after and reports what Redis did per request: the commands
// the masters ran (script-internal ones included) and the round trips
// (EVALSHA and plain commands), what the replicas ran, the bytes the
// masters received, and the masters' CPU. The nodes' background work
// (leases, adoption rounds, probes) is measured while idle first and
// subtracted.
func ClusterProcs(ctx context.Context, o Options) (*Report, error) {
	if _, err := exec.LookPath("redis-server"); err != nil {
		return &Report{Skipped: fmt.Sprintf("no redis-server on PATH (%v): it starts a Redis Cluster of its own", err)}, nil
	}
	nodes := o.Nodes
	if nodes <= 0 {
		nodes = ClusterNodes
	}
	progs, err := buildPrograms(ctx, o, "syncgate", "demo", "kafka-embedded")
	if err != nil {
		return nil, err
	}
	defer progs.close()
	dir, err := os.MkdirTemp("", "syncgate-cluster-procs-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	progress(o, "starting a Redis Cluster (3 masters, 3 replicas)")
	rc, err := redistest.StartCluster(dir)
	if err != nil {
		return nil, fmt.Errorf("scenario: Redis Cluster: %w", err)
	}
	defer rc.Stop()

	st := &stack{}
	defer st.stop()
	kaddr, err := st.add("broker", []string{progs.bin("kafka-embedded"), "-listen", "127.0.0.1:0", "-topics", "demo.echo,demo.sleep"}, matchRE(listeningRE))
	if err != nil {
		return nil, err
	}
	if _, err := st.add("service", []string{progs.bin("demo"), "--broker", "kafka", "--kafka-brokers", kaddr}, contains("demo service ready")); err != nil {
		return nil, err
	}
	suffix := randomSuffix()
	var urls []string
	for i := range nodes {
		progress(o, fmt.Sprintf("starting gateway node %d of %d", i+1, nodes))
		addr, err := st.add(fmt.Sprintf("node-%02d", i+1), []string{progs.bin("syncgate"), "--addr", "127.0.0.1:0",
			"--broker", "kafka", "--kafka-brokers", kaddr, "--demo=false", "--node", fmt.Sprintf("lt-%s-%02d", suffix, i+1),
			"--cluster", "--redis-cluster-addrs", strings.Join(rc.Addrs, ",")}, matchRE(readyAddrRE))
		if err != nil {
			return nil, err
		}
		urls = append(urls, "http://"+addr+"/demo/echo")
	}
	procs := st.processes()
	for i, pid := range rc.PIDs() {
		procs = append(procs, loadtest.Process{Name: "redis-" + rc.Addrs[i][strings.LastIndex(rc.Addrs[i], ":")+1:], PID: pid})
	}

	// The background: what the idle nodes make Redis do per second.
	idle := o.dur(3*time.Second, 10*time.Second)
	progress(o, fmt.Sprintf("measuring the idle nodes' Redis work for %s", idle))
	s0, err := redisStats(ctx, rc.Addrs)
	if err != nil {
		return nil, err
	}
	t0 := time.Now()
	select {
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-time.After(idle):
	}
	s1, err := redisStats(ctx, rc.Addrs)
	if err != nil {
		return nil, err
	}
	idleS := time.Since(t0).Seconds()
	bg := s1.minus(s0)

	client := loadtest.NewClient(Connections)
	defer client.CloseIdleConnections()
	var done atomic.Int64
	op := spreadOp(client, urls, &done)
	t1 := time.Now()
	res, err := loadtest.Run(ctx, loadtest.Config{
		Name: fmt.Sprintf("%d gateway nodes, Redis Cluster, %d workers", nodes, Connections), Workers: Connections,
		Warmup: o.dur(time.Second, 3*time.Second), Duration: o.dur(5*time.Second, 20*time.Second), Timeout: 10 * time.Second,
		Progress: o.Progress, Processes: procs,
	}, op)
	if err != nil {
		return nil, err
	}
	s2, err := redisStats(ctx, rc.Addrs)
	if err != nil {
		return nil, err
	}
	loadS := time.Since(t1).Seconds()
	ops := float64(done.Load())
	load := s2.minus(s1).less(bg, loadS/idleS)

	rep := &Report{Command: fmt.Sprintf("go run ./cmd/loadtest scenario cluster-procs -nodes %d", nodes), Results: []*loadtest.Result{res}}
	per := func(v float64) float64 {
		if ops == 0 {
			return 0
		}
		return v / ops
	}
	rep.Comparisons = append(rep.Comparisons,
		compare("Redis round trips per auto request (EVALSHA + plain commands on the masters)", per(load.roundTrips()), "TestRedisWorkPerRequest (docs/scaling.md)", 1, "").atMost(1.1),
		compare("Redis commands run per auto request (scripts' included, on the masters)", per(load.commands(true)), "TestRedisWorkPerRequest (docs/scaling.md)", 5, "").atMost(1.1),
	)
	rep.Notes = append(rep.Notes,
		fmt.Sprintf("%d syncgate nodes (`--cluster`, Redis Cluster seeds, the example's auto route `/demo/echo`: wait 5 s), one cmd/demo, one kafka-embedded, and a Redis Cluster of 3 masters with a replica each, all on this machine; the load tool sends 256-byte JSON bodies round-robin over the nodes (every echo checked). %d requests completed.", nodes, int64(ops)),
		fmt.Sprintf("Redis per request, from INFO on every node before and after the load (%.0f s), less the idle nodes' background (%.1f commands/s on the masters for %d nodes, measured for %.0f s first): masters ran %.2f commands (%s), of which %.2f round trips from the nodes; the replicas applied %.2f; the masters received %.0f bytes and spent %.0f µs of CPU (%.0f µs with the background).",
			loadS, bg.commands(true)/idleS, nodes, idleS,
			per(load.commands(true)), load.byCommand(ops), per(load.roundTrips()), per(load.commands(false)),
			per(load.netIn), per(load.cpuUS), per(s2.minus(s1).cpuUS)),
		"CPU per request of each process is user+system time from /proc/<pid>/stat over the measured part; redis-PORT are the six Redis nodes (three masters, three replicas). On 2 shared cores the processes compete: the throughput is this machine's, the per-request costs are the design's.",
	)
	return rep, nil
}

// spreadOp posts a fresh procsBody to the next of urls in turn (echoOp's
// checks), and counts completed requests in done (warm-up included, as
// Redis counts them).
func spreadOp(client *http.Client, urls []string, done *atomic.Int64) loadtest.Op {
	return echoOpTo(client, func(n uint64) string { return urls[n%uint64(len(urls))] }, done)
}

// clusterStats is INFO of every node of a Redis Cluster, summed by role.
type clusterStats struct {
	master, replica map[string]float64 // calls by command (lower case)
	netIn           float64            // masters' total_net_input_bytes
	cpuUS           float64            // masters' used_cpu_user + used_cpu_sys, µs
}

func redisStats(ctx context.Context, addrs []string) (clusterStats, error) {
	s := clusterStats{master: map[string]float64{}, replica: map[string]float64{}}
	for _, a := range addrs {
		c := goredis.NewClient(&goredis.Options{Addr: a})
		info, err := c.Info(ctx, "replication", "commandstats", "stats", "cpu").Result()
		_ = c.Close()
		if err != nil {
			return s, fmt.Errorf("scenario: INFO on %s: %w", a, err)
		}
		f := infoFields(info)
		calls := s.replica
		if f["role"] == "master" {
			calls = s.master
			in, _ := strconv.ParseFloat(f["total_net_input_bytes"], 64)
			u, _ := strconv.ParseFloat(f["used_cpu_user"], 64)
			sy, _ := strconv.ParseFloat(f["used_cpu_sys"], 64)
			s.netIn += in
			s.cpuUS += (u + sy) * 1e6
		}
		for k, v := range f {
			// cmdstat_set:calls=12,usec=...
			cmd, ok := strings.CutPrefix(k, "cmdstat_")
			if !ok {
				continue
			}
			for _, kv := range strings.Split(v, ",") {
				if n, ok := strings.CutPrefix(kv, "calls="); ok {
					x, _ := strconv.ParseFloat(n, 64)
					calls[cmd] += x
				}
			}
		}
	}
	return s, nil
}

func infoFields(info string) map[string]string {
	f := map[string]string{}
	for _, line := range strings.Split(info, "\r\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && !strings.HasPrefix(line, "#") {
			f[k] = v
		}
	}
	return f
}

// notPerRequest are the commands the scenario itself and the cluster's
// own upkeep send (INFO, CLUSTER, PING, the replication stream's REPLCONF).
var notPerRequest = []string{"info", "cluster|info", "cluster|nodes", "cluster|slots", "cluster|shards", "ping", "replconf", "command", "command|docs", "hello", "client|setinfo", "client|setname", "auth", "select", "readonly"}

func (s clusterStats) minus(b clusterStats) clusterStats {
	d := clusterStats{master: map[string]float64{}, replica: map[string]float64{}, netIn: s.netIn - b.netIn, cpuUS: s.cpuUS - b.cpuUS}
	for k, v := range s.master {
		d.master[k] = v - b.master[k]
	}
	for k, v := range s.replica {
		d.replica[k] = v - b.replica[k]
	}
	return d
}

// less subtracts the background bg, scaled by f (the ratio of durations).
func (s clusterStats) less(bg clusterStats, f float64) clusterStats {
	d := clusterStats{master: map[string]float64{}, replica: map[string]float64{}, netIn: s.netIn - f*bg.netIn, cpuUS: s.cpuUS - f*bg.cpuUS}
	for k, v := range s.master {
		d.master[k] = v - f*bg.master[k]
	}
	for k, v := range s.replica {
		d.replica[k] = v - f*bg.replica[k]
	}
	return d
}

// commands sums the calls on the masters (or the replicas), less the
// upkeep commands.
func (s clusterStats) commands(masters bool) float64 {
	m := s.replica
	if masters {
		m = s.master
	}
	var n float64
	for k, v := range m {
		if !slices.Contains(notPerRequest, k) {
			n += v
		}
	}
	return n
}

// roundTrips are the scripts the masters ran (EVALSHA): the auto route
// sends nothing else per request. (INFO counts a command run by a script
// and one sent by a client alike, so plain commands cannot be told apart.)
func (s clusterStats) roundTrips() float64 {
	var n float64
	for _, k := range []string{"evalsha", "eval"} {
		n += s.master[k]
	}
	return n
}

// byCommand lists the masters' calls per request, largest first.
func (s clusterStats) byCommand(ops float64) string {
	type kv struct {
		k string
		v float64
	}
	var l []kv
	for k, v := range s.master {
		if !slices.Contains(notPerRequest, k) && v/ops >= 0.005 {
			l = append(l, kv{k, v / ops})
		}
	}
	slices.SortFunc(l, func(a, b kv) int {
		if a.v != b.v {
			if a.v > b.v {
				return -1
			}
			return 1
		}
		return strings.Compare(a.k, b.k)
	})
	parts := make([]string, len(l))
	for i, x := range l {
		parts[i] = fmt.Sprintf("%s %.2f", strings.ToUpper(x.k), x.v)
	}
	return strings.Join(parts, ", ")
}

func progress(o Options, msg string) {
	if o.Progress != nil {
		fmt.Fprintln(o.Progress, msg)
	}
}
