// Package redistest starts the Redis deployments the tests run cluster
// mode on, besides the shared single server (testenv.RequireRedis): a Redis
// Cluster of three masters with a replica each, and a Sentinel set (one
// master, one replica, three sentinels). Both are redis-server processes of
// this machine on free loopback ports, children of the test binary, with
// nothing on disk but their config files in a temporary directory.
//
// A test binary starts each at most once (Cluster, Sentinel) and stops them
// in TestMain (Stop), so that the packages' tests share them the way they
// share the single server: every test keeps to a key prefix of its own.
//
// SecureServer, SecureCluster and SecureSentinel are the same three
// deployments secured the way production ones are: TLS only (with client
// certificates, and between the servers), an ACL user with the default
// user off, a password on the sentinels. Each has a CA of its own, made
// when it starts.
package redistest

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/internal/testenv"
)

// startTimeout bounds starting a deployment, from the first process to the
// cluster being ok or the sentinels knowing each other.
const startTimeout = 60 * time.Second

// waitTimeout bounds a wait of this package (waitFor) whose context has no
// deadline of its own: nothing here waits for the test binary's -timeout.
const waitTimeout = 60 * time.Second

// proc is one redis-server child.
type proc struct {
	addr string
	cmd  *exec.Cmd
	done chan struct{}
	// dir, port and args start it again (restart).
	dir  string
	port int
	args []string
}

// restart starts p's server again with the same arguments, after stop.
func (p *proc) restart() (*proc, error) { return start(p.dir, p.port, p.args...) }

func (p *proc) stop() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// start runs redis-server with args (a config file, or flags) in dir.
func start(dir string, port int, args ...string) (*proc, error) {
	cmd := exec.Command("redis-server", args...)
	cmd.Dir = dir
	testenv.DieWithParent(cmd)
	log, err := os.OpenFile(filepath.Join(dir, "redis-"+strconv.Itoa(port)+".log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return nil, fmt.Errorf("redistest: start redis-server: %w", err)
	}
	p := &proc{addr: "127.0.0.1:" + strconv.Itoa(port), cmd: cmd, done: make(chan struct{}), dir: dir, port: port, args: args}
	go func() {
		_ = cmd.Wait()
		_ = log.Close()
		close(p.done)
	}()
	return p, nil
}

// serverArgs are the arguments every data node gets: loopback only,
// nothing on disk; with sec, a config file of its TLS and ACL directives
// first, and the port is its TLS port.
func serverArgs(dir string, port int, sec *Secure, cluster bool) ([]string, error) {
	args := []string{"--port", strconv.Itoa(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
		"--protected-mode", "no", "--daemonize", "no"}
	if sec == nil {
		return args, nil
	}
	conf, err := sec.dataConf(dir, port, cluster)
	if err != nil {
		return nil, err
	}
	return append([]string{conf}, args[2:]...), nil
}

// freePorts returns n consecutive ports that are free, and whose ports
// +10000 (a cluster node's bus) are free too. Both lie below Linux's
// ephemeral range (32768 up), where no outgoing connection of a parallel
// test can take them before the server binds them, and above
// testenv.FreePort's range.
func freePorts(n int) (int, error) {
	for range 200 {
		base := 20000 + rand.N(2700)
		ok := true
		for i := range n {
			for _, p := range []int{base + i, base + i + 10000} {
				ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
				if err != nil {
					ok = false
					break
				}
				_ = ln.Close()
			}
			if !ok {
				break
			}
		}
		if ok {
			return base, nil
		}
	}
	return 0, errors.New("redistest: no free ports")
}

// waitFor polls cond every 50 ms until it returns nil or ctx ends, or
// waitTimeout passes when ctx has no deadline. cond's client calls take
// ctx, so its deadline ends a call that hangs too.
func waitFor(ctx context.Context, what string, cond func(context.Context) error) error {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, waitTimeout)
		defer cancel()
	}
	for {
		err := cond(ctx)
		if err == nil {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redistest: %s: %w (last: %v)", what, ctx.Err(), err)
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func ping(ctx context.Context, o *goredis.Options) error {
	c := goredis.NewClient(o)
	defer c.Close()
	return c.Ping(ctx).Err()
}

var (
	mu             sync.Mutex
	cluster        *RedisCluster
	sentinel       *RedisSentinel
	secureServer   *RedisServer
	secureCluster  *RedisCluster
	secureSentinel *RedisSentinel
	dirs           []string
)

// Cluster returns the test binary's Redis Cluster, starting it on first
// use. Without redis-server the test fails under CI=true and is skipped
// elsewhere; under -short it is skipped.
func Cluster(t testing.TB) *RedisCluster {
	t.Helper()
	return shared(t, "a Redis Cluster", &cluster, StartCluster)
}

// Sentinel returns the test binary's Sentinel set, starting it on first
// use, as Cluster does.
func Sentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	return shared(t, "a Redis Sentinel set", &sentinel, StartSentinel)
}

// SecureServer returns the test binary's secured single server (TLS with
// client certificates, an ACL user), starting it on first use.
func SecureServer(t testing.TB) *RedisServer {
	t.Helper()
	return shared(t, "a Redis server with TLS and ACL", &secureServer, secured(startServer))
}

// SecureCluster is Cluster, secured: TLS everywhere (the cluster bus too),
// client certificates, an ACL user.
func SecureCluster(t testing.TB) *RedisCluster {
	t.Helper()
	return shared(t, "a Redis Cluster with TLS and ACL", &secureCluster, secured(startCluster))
}

// SecureSentinel is Sentinel, secured: TLS for the data nodes and the
// sentinels, an ACL user on the data nodes, a password on the sentinels.
func SecureSentinel(t testing.TB) *RedisSentinel {
	t.Helper()
	return shared(t, "a Redis Sentinel set with TLS and passwords", &secureSentinel, secured(startSentinel))
}

// secured adapts a starter to shared: it starts the deployment with the
// TLS and ACL set-up of a CA made for it in its directory.
func secured[T any](start func(dir string, sec *Secure) (*T, error)) func(dir string) (*T, error) {
	return func(dir string) (*T, error) {
		sec, err := newSecure(dir)
		if err != nil {
			return nil, err
		}
		return start(dir, sec)
	}
}

// shared returns *p, started by start in a directory of its own on first
// use (Stop removes it).
func shared[T any](t testing.TB, what string, p **T, start func(dir string) (*T, error)) *T {
	t.Helper()
	need(t, what)
	mu.Lock()
	defer mu.Unlock()
	if *p == nil {
		dir, err := tempDir()
		if err != nil {
			t.Fatal(err)
		}
		v, err := start(dir)
		if err != nil {
			t.Fatalf("redistest: start %s: %v (logs in %s)", what, err, dir)
		}
		*p = v
	}
	return *p
}

func need(t testing.TB, what string) {
	t.Helper()
	if testing.Short() {
		t.Skipf("this test needs %s; -short (make check) runs only the tests that need no server", what)
	}
	if _, err := exec.LookPath("redis-server"); err != nil {
		testenv.Unavailable(t, "this test needs redis-server on PATH to start %s: %v", what, err)
	}
}

func tempDir() (string, error) {
	dir, err := os.MkdirTemp("", "syncgate-redistest-")
	if err == nil {
		dirs = append(dirs, dir)
	}
	return dir, err
}

// Stop stops what Cluster and Sentinel started and removes their
// directories. TestMain calls it after m.Run.
func Stop() {
	mu.Lock()
	defer mu.Unlock()
	if cluster != nil {
		cluster.Stop()
		cluster = nil
	}
	if sentinel != nil {
		sentinel.Stop()
		sentinel = nil
	}
	if secureServer != nil {
		secureServer.p.stop()
		secureServer = nil
	}
	if secureCluster != nil {
		secureCluster.Stop()
		secureCluster = nil
	}
	if secureSentinel != nil {
		secureSentinel.Stop()
		secureSentinel = nil
	}
	for _, d := range dirs {
		_ = os.RemoveAll(d)
	}
	dirs = nil
}

// Main is a TestMain body for the packages that use this one: it runs the
// tests, stops the deployments and exits with the tests' status.
func Main(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// RedisServer is a single redis-server.
type RedisServer struct {
	Addr string
	// Secure is what its clients need, or nil.
	Secure *Secure
	p      *proc
}

func startServer(dir string, sec *Secure) (*RedisServer, error) {
	port, err := freePorts(1)
	if err != nil {
		return nil, err
	}
	args, err := serverArgs(dir, port, sec, false)
	if err != nil {
		return nil, err
	}
	p, err := start(dir, port, args...)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := waitFor(ctx, "server "+p.addr+" answers", func(ctx context.Context) error { return ping(ctx, sec.options(p.addr)) }); err != nil {
		p.stop()
		return nil, err
	}
	return &RedisServer{Addr: p.addr, Secure: sec, p: p}, nil
}

// RedisCluster is a Redis Cluster of three masters, each with one replica.
type RedisCluster struct {
	// Addrs are every node's host:port, the masters first as created.
	Addrs []string
	// Secure is what its clients need, or nil (plain TCP, no ACL).
	Secure *Secure
	procs  []*proc
}

// StartCluster starts the six nodes in dir and joins them with
// redis-cli --cluster create; it returns once every slot is served and
// every replica is in sync.
func StartCluster(dir string) (*RedisCluster, error) { return startCluster(dir, nil) }

// startCluster is StartCluster, secured when sec is not nil.
func startCluster(dir string, sec *Secure) (*RedisCluster, error) {
	const nodes = 6
	base, err := freePorts(nodes)
	if err != nil {
		return nil, err
	}
	c := &RedisCluster{Secure: sec}
	for i := range nodes {
		port := base + i
		args, err := serverArgs(dir, port, sec, true)
		if err != nil {
			c.Stop()
			return nil, err
		}
		args = append(args, "--cluster-enabled", "yes",
			"--cluster-config-file", "nodes-"+strconv.Itoa(port)+".conf", "--cluster-node-timeout", "2000")
		p, err := start(dir, port, args...)
		if err != nil {
			c.Stop()
			return nil, err
		}
		c.procs = append(c.procs, p)
		c.Addrs = append(c.Addrs, p.addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	for _, a := range c.Addrs {
		if err := waitFor(ctx, "node "+a+" answers", func(ctx context.Context) error { return ping(ctx, sec.options(a)) }); err != nil {
			c.Stop()
			return nil, err
		}
	}
	args := append(append([]string{"--cluster", "create"}, c.Addrs...), "--cluster-replicas", "1", "--cluster-yes")
	if sec != nil {
		args = append(args, sec.cliArgs()...)
	}
	out, err := exec.CommandContext(ctx, "redis-cli", args...).CombinedOutput()
	if err != nil {
		c.Stop()
		return nil, fmt.Errorf("redis-cli --cluster create: %w: %s", err, out)
	}
	if err := c.WaitHealthy(ctx); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// WaitHealthy waits until every node reports cluster_state:ok, sees three
// replicas and no failed node, and each of the three replicas has its
// link to its master up.
func (c *RedisCluster) WaitHealthy(ctx context.Context) error {
	return waitFor(ctx, "cluster healthy", func(ctx context.Context) error {
		synced := 0
		for _, a := range c.Addrs {
			n := goredis.NewClient(c.Secure.options(a))
			info, err := n.ClusterInfo(ctx).Result()
			var repl, nodes string
			if err == nil {
				repl, err = n.Info(ctx, "replication").Result()
			}
			if err == nil {
				nodes, err = n.ClusterNodes(ctx).Result()
			}
			_ = n.Close()
			if err != nil {
				return err
			}
			if !strings.Contains(info, "cluster_state:ok") {
				return fmt.Errorf("%s: cluster_state not ok", a)
			}
			replicas := 0
			for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
				f := strings.Fields(line)
				if len(f) < 3 || strings.Contains(f[2], "fail") {
					return fmt.Errorf("%s sees %q", a, line)
				}
				if strings.Contains(f[2], "slave") {
					replicas++
				}
			}
			if replicas < 3 {
				return fmt.Errorf("%s sees %d replicas", a, replicas)
			}
			if strings.Contains(repl, "role:slave") && strings.Contains(repl, "master_link_status:up") {
				synced++
			}
		}
		if synced < 3 {
			return fmt.Errorf("%d of 3 replicas in sync", synced)
		}
		return nil
	})
}

// Client returns a cluster client of c, closed when t ends.
func (c *RedisCluster) Client(t testing.TB) *goredis.ClusterClient {
	rdb := goredis.NewClusterClient(c.options())
	t.Cleanup(func() { _ = rdb.Close() })
	return rdb
}

// KillMaster kills the master serving key's slot at once (SIGKILL, no
// coordinated failover) and waits until the cluster has promoted its
// replica and serves every slot again. It returns the addresses of the
// killed and the promoted node, and restart, which starts the killed node
// again (it rejoins as a replica) and waits until the cluster is healthy;
// the caller must call it, the cluster is shared.
func (c *RedisCluster) KillMaster(ctx context.Context, key string) (killed, promoted string, restart func(context.Context) error, err error) {
	_, killed, promoted, err = c.shardOf(ctx, key)
	if err != nil {
		return "", "", nil, err
	}
	i := slices.IndexFunc(c.procs, func(p *proc) bool { return p.addr == killed })
	if i < 0 {
		return "", "", nil, fmt.Errorf("redistest: %s is not a node of this cluster", killed)
	}
	c.procs[i].stop()
	r := goredis.NewClient(c.Secure.options(promoted))
	defer r.Close()
	err = waitFor(ctx, "replica "+promoted+" promoted after its master died", func(ctx context.Context) error {
		if err := isMaster(ctx, r); err != nil {
			return err
		}
		info, err := r.ClusterInfo(ctx).Result()
		if err != nil {
			return err
		}
		if !strings.Contains(info, "cluster_state:ok") {
			return errors.New("cluster_state not ok")
		}
		return nil
	})
	if err != nil {
		err = fmt.Errorf("%w\n%s", err, c.Describe(""))
	}
	restart = func(ctx context.Context) error {
		p, err := c.procs[i].restart()
		if err != nil {
			return err
		}
		c.procs[i] = p
		return c.WaitHealthy(ctx)
	}
	return killed, promoted, restart, err
}

// shardOf returns key's slot, the master serving it and its replica.
func (c *RedisCluster) shardOf(ctx context.Context, key string) (slot int64, master, replica string, err error) {
	rdb := goredis.NewClusterClient(c.options())
	defer rdb.Close()
	slot, err = rdb.ClusterKeySlot(ctx, key).Result()
	if err != nil {
		return 0, "", "", err
	}
	// CLUSTER NODES, not CLUSTER SLOTS: Redis 7 leaves out of the latter a
	// replica whose replication offset is still 0 (nothing written yet).
	var nodes string
	for _, a := range c.Addrs {
		n := goredis.NewClient(c.Secure.options(a))
		nodes, err = n.ClusterNodes(ctx).Result()
		_ = n.Close()
		if err == nil {
			break
		}
	}
	if err != nil {
		return 0, "", "", err
	}
	masterID, master := slotMaster(nodes, slot)
	for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
		if f := strings.Fields(line); len(f) > 3 && masterID != "" && f[3] == masterID && !strings.Contains(f[2], "fail") {
			replica = strings.Split(f[1], "@")[0]
		}
	}
	if replica == "" {
		return 0, "", "", fmt.Errorf("redistest: no replica of the master of slot %d in %s", slot, nodes)
	}
	return slot, master, replica, nil
}

// slotMaster returns the id and address of the master that nodes (CLUSTER
// NODES output) names as serving slot, or "" when no master without the
// fail flag does.
func slotMaster(nodes string, slot int64) (id, addr string) {
	for _, line := range strings.Split(strings.TrimSpace(nodes), "\n") {
		f := strings.Fields(line)
		if len(f) < 8 || !strings.Contains(f[2], "master") || strings.Contains(f[2], "fail") {
			continue
		}
		for _, r := range f[8:] {
			lo, hi, ok := strings.Cut(r, "-")
			if !ok {
				hi = lo
			}
			l, err1 := strconv.ParseInt(lo, 10, 64)
			h, err2 := strconv.ParseInt(hi, 10, 64)
			if err1 == nil && err2 == nil && l <= slot && slot <= h {
				id, addr = f[0], strings.Split(f[1], "@")[0]
			}
		}
	}
	return id, addr
}

// Failover promotes the replica of the master serving key's slot with
// CLUSTER FAILOVER (a coordinated switch, no write lost) and waits until
// the replica says it is master, every node names it the master of the
// slot (a client loading its slot map from any node finds it), and the
// cluster is healthy again with the old master as a replica. It returns
// the addresses of the old and the new master. Without a deadline on ctx,
// every wait ends after waitTimeout; an error says which did not end and
// describes the cluster (Describe).
func (c *RedisCluster) Failover(ctx context.Context, key string) (oldMaster, newMaster string, err error) {
	slot, oldMaster, newMaster, err := c.shardOf(ctx, key)
	if err != nil {
		return "", "", err
	}
	err = c.failover(ctx, slot, newMaster)
	if err != nil {
		err = fmt.Errorf("redistest: failover of slot %d (key %s) from %s to %s: %w\n%s", slot, key, oldMaster, newMaster, err, c.Describe(""))
	}
	return oldMaster, newMaster, err
}

func (c *RedisCluster) failover(ctx context.Context, slot int64, newMaster string) error {
	r := goredis.NewClient(c.Secure.options(newMaster))
	defer r.Close()
	// CLUSTER FAILOVER only starts the switch: the replica asks its master
	// to pause, catches up and takes over, or gives up silently after
	// Redis' manual failover timeout (5 s); the waits below see which.
	if err := r.Do(ctx, "CLUSTER", "FAILOVER").Err(); err != nil {
		return fmt.Errorf("CLUSTER FAILOVER on %s: %w", newMaster, err)
	}
	if err := waitFor(ctx, "replica "+newMaster+" promoted (ROLE master)", func(ctx context.Context) error { return isMaster(ctx, r) }); err != nil {
		return err
	}
	what := fmt.Sprintf("every node names %s the master of slot %d", newMaster, slot)
	if err := waitFor(ctx, what, func(ctx context.Context) error {
		for _, a := range c.Addrs {
			n := goredis.NewClient(c.Secure.options(a))
			nodes, err := n.ClusterNodes(ctx).Result()
			_ = n.Close()
			if err != nil {
				return fmt.Errorf("%s: %w", a, err)
			}
			if _, m := slotMaster(nodes, slot); m != newMaster {
				return fmt.Errorf("%s names %q", a, m)
			}
		}
		return nil
	}); err != nil {
		return err
	}
	return c.WaitHealthy(ctx)
}

// describeTimeout bounds Describe, which runs when a test has failed,
// often after the test's own deadline.
const describeTimeout = 5 * time.Second

// Describe returns, for a failure message, each node's role and, when
// channel is not "", how many shard subscribers of channel it has
// (PUBSUB SHARDNUMSUB, which counts the node's own), then CLUSTER NODES
// as the first node that answers sees it. It takes at most
// describeTimeout.
func (c *RedisCluster) Describe(channel string) string {
	ctx, cancel := context.WithTimeout(context.Background(), describeTimeout)
	defer cancel()
	var b strings.Builder
	var nodes string
	for _, a := range c.Addrs {
		n := goredis.NewClient(c.Secure.options(a))
		fmt.Fprintf(&b, "node %s: %s", a, role(ctx, n))
		if channel != "" {
			if subs, err := n.PubSubShardNumSub(ctx, channel).Result(); err != nil {
				fmt.Fprintf(&b, ", SHARDNUMSUB: %v", err)
			} else {
				fmt.Fprintf(&b, ", %d shard subscribers of %s", subs[channel], channel)
			}
		}
		b.WriteString("\n")
		if nodes == "" {
			nodes, _ = n.ClusterNodes(ctx).Result()
		}
		_ = n.Close()
	}
	b.WriteString("CLUSTER NODES:\n")
	b.WriteString(nodes)
	return b.String()
}

// role returns r's server's ROLE reply, or the error, for Describe.
func role(ctx context.Context, r *goredis.Client) string {
	v, err := r.Do(ctx, "ROLE").Slice()
	if err != nil {
		return "ROLE: " + err.Error()
	}
	return fmt.Sprint("ROLE ", v)
}

// isMaster returns nil when r's server says ROLE master.
func isMaster(ctx context.Context, r *goredis.Client) error {
	role, err := r.Do(ctx, "ROLE").Slice()
	if err != nil {
		return err
	}
	if len(role) == 0 || role[0] != "master" {
		return fmt.Errorf("role %v", role)
	}
	return nil
}

// PIDs returns the process id of each node, in the order of Addrs.
func (c *RedisCluster) PIDs() []int {
	pids := make([]int, len(c.procs))
	for i, p := range c.procs {
		pids[i] = p.cmd.Process.Pid
	}
	return pids
}

// options are the options of a cluster client of c.
func (c *RedisCluster) options() *goredis.ClusterOptions {
	o := &goredis.ClusterOptions{Addrs: c.Addrs}
	if s := c.Secure; s != nil {
		o.TLSConfig, o.Username, o.Password = s.TLSConfig(), s.Username, s.Password
	}
	return o
}

// Stop kills every node.
func (c *RedisCluster) Stop() {
	for _, p := range c.procs {
		p.stop()
	}
}

// RedisSentinel is one master with one replica, watched by three sentinels
// under the master name MasterName.
type RedisSentinel struct {
	MasterName    string
	SentinelAddrs []string
	// Secure is what its clients need, or nil (plain TCP, no passwords).
	Secure    *Secure
	data      []*proc // master, replica
	sentinels []*proc
}

// StartSentinel starts the set in dir; it returns once every sentinel
// knows the replica and the two other sentinels, so a failover can be
// agreed.
func StartSentinel(dir string) (*RedisSentinel, error) { return startSentinel(dir, nil) }

// startSentinel is StartSentinel, secured when sec is not nil.
func startSentinel(dir string, sec *Secure) (*RedisSentinel, error) {
	base, err := freePorts(5)
	if err != nil {
		return nil, err
	}
	s := &RedisSentinel{MasterName: "syncgate-test", Secure: sec}
	master := base
	for i, port := range []int{base, base + 1} {
		args, err := serverArgs(dir, port, sec, false)
		if err != nil {
			s.Stop()
			return nil, err
		}
		if i == 1 {
			args = append(args, "--replicaof", "127.0.0.1", strconv.Itoa(master))
		}
		p, err := start(dir, port, args...)
		if err != nil {
			s.Stop()
			return nil, err
		}
		s.data = append(s.data, p)
	}
	for _, port := range []int{base + 2, base + 3, base + 4} {
		conf := filepath.Join(dir, "sentinel-"+strconv.Itoa(port)+".conf")
		text := fmt.Sprintf("port %d\nbind 127.0.0.1\nprotected-mode no\ndaemonize no\n"+
			"sentinel monitor %s 127.0.0.1 %d 2\nsentinel down-after-milliseconds %s 1000\n"+
			"sentinel failover-timeout %s 5000\nsentinel parallel-syncs %s 1\n",
			port, s.MasterName, master, s.MasterName, s.MasterName, s.MasterName)
		if sec != nil {
			text += sec.sentinelLines(port, s.MasterName)
		}
		if err := os.WriteFile(conf, []byte(text), 0o600); err != nil {
			s.Stop()
			return nil, err
		}
		p, err := start(dir, port, conf, "--sentinel")
		if err != nil {
			s.Stop()
			return nil, err
		}
		s.sentinels = append(s.sentinels, p)
		s.SentinelAddrs = append(s.SentinelAddrs, p.addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if err := s.WaitHealthy(ctx); err != nil {
		s.Stop()
		return nil, err
	}
	return s, nil
}

// WaitHealthy waits until every sentinel sees the master, its replica in
// sync and the two other sentinels.
func (s *RedisSentinel) WaitHealthy(ctx context.Context) error {
	return waitFor(ctx, "sentinels agreed", func(ctx context.Context) error {
		for _, a := range s.SentinelAddrs {
			sc := goredis.NewSentinelClient(s.Secure.sentinelOptions(a))
			replicas, err := sc.Replicas(ctx, s.MasterName).Result()
			var peers []map[string]string
			if err == nil {
				peers, err = sc.Sentinels(ctx, s.MasterName).Result()
			}
			_ = sc.Close()
			if err != nil {
				return fmt.Errorf("sentinel %s: %w", a, err)
			}
			up := 0
			for _, r := range replicas {
				if !strings.Contains(r["flags"], "down") && !strings.Contains(r["flags"], "disconnected") && r["master-link-status"] == "ok" {
					up++
				}
			}
			if up < 1 || len(peers) < 2 {
				return fmt.Errorf("sentinel %s sees %d replicas in sync and %d other sentinels", a, up, len(peers))
			}
		}
		return nil
	})
}

// Master asks a sentinel for the current master's address.
func (s *RedisSentinel) Master(ctx context.Context) (string, error) {
	sc := goredis.NewSentinelClient(s.Secure.sentinelOptions(s.SentinelAddrs[0]))
	defer sc.Close()
	hp, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(hp[0], hp[1]), nil
}

// Failover makes a sentinel promote the replica (SENTINEL FAILOVER) and
// waits until the sentinels name the new master and see the old one as its
// replica in sync. It returns the old and the new master's addresses.
// Without a deadline on ctx, every wait ends after waitTimeout; an error
// says which did not end and describes the set (Describe).
func (s *RedisSentinel) Failover(ctx context.Context) (oldMaster, newMaster string, err error) {
	oldMaster, err = s.Master(ctx)
	if err != nil {
		return "", "", err
	}
	defer func() {
		if err != nil {
			err = fmt.Errorf("redistest: sentinel failover from %s: %w\n%s", oldMaster, err, s.Describe(""))
		}
	}()
	sc := goredis.NewSentinelClient(s.Secure.sentinelOptions(s.SentinelAddrs[0]))
	defer sc.Close()
	if err := sc.Failover(ctx, s.MasterName).Err(); err != nil {
		return "", "", fmt.Errorf("redistest: SENTINEL FAILOVER: %w", err)
	}
	err = waitFor(ctx, "a new master", func(ctx context.Context) error {
		m, err := s.Master(ctx)
		if err != nil {
			return err
		}
		if m == oldMaster {
			return errors.New("still the old master")
		}
		newMaster = m
		return nil
	})
	if err == nil {
		err = s.WaitHealthy(ctx)
	}
	return oldMaster, newMaster, err
}

// Describe returns, for a failure message, each data node's role and, when
// channel is not "", how many subscribers of channel it has (PUBSUB
// NUMSUB, which counts the node's own), then the master each sentinel
// names. It takes at most describeTimeout.
func (s *RedisSentinel) Describe(channel string) string {
	ctx, cancel := context.WithTimeout(context.Background(), describeTimeout)
	defer cancel()
	var b strings.Builder
	for _, p := range s.data {
		n := goredis.NewClient(s.Secure.options(p.addr))
		fmt.Fprintf(&b, "node %s: %s", p.addr, role(ctx, n))
		if channel != "" {
			if subs, err := n.PubSubNumSub(ctx, channel).Result(); err != nil {
				fmt.Fprintf(&b, ", NUMSUB: %v", err)
			} else {
				fmt.Fprintf(&b, ", %d subscribers of %s", subs[channel], channel)
			}
		}
		b.WriteString("\n")
		_ = n.Close()
	}
	for _, a := range s.SentinelAddrs {
		sc := goredis.NewSentinelClient(s.Secure.sentinelOptions(a))
		hp, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
		_ = sc.Close()
		if err != nil {
			fmt.Fprintf(&b, "sentinel %s: %v\n", a, err)
		} else {
			fmt.Fprintf(&b, "sentinel %s: master %s\n", a, net.JoinHostPort(hp[0], hp[1]))
		}
	}
	return b.String()
}

// Stop kills the sentinels and the data nodes.
func (s *RedisSentinel) Stop() {
	for _, p := range append(s.sentinels, s.data...) {
		p.stop()
	}
}
