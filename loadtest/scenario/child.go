package scenario

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/syncgate/syncgate/brokers/responder/demo"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/loadtest"
)

// WaitersEnv passes the number of waiters to a node started by ServeNode's
// parent.
const WaitersEnv = "SYNCGATE_LOADTEST_WAITERS"

// Stat is the memory of the node process, read in that process.
type Stat struct {
	RSS        int64 `json:"rss_bytes"`        // VmRSS from /proc/self/status
	HeapAlloc  int64 `json:"heap_alloc_bytes"` // live heap after a GC
	HeapInuse  int64 `json:"heap_inuse_bytes"`
	StackInuse int64 `json:"stack_inuse_bytes"`
	Sys        int64 `json:"sys_bytes"`
	Goroutines int   `json:"goroutines"`
	Waiting    int   `json:"waiting"` // the gateway's registry size
	Streams    int   `json:"streams"` // event streams open (syncgate_streams_open)
}

// waitersConfig is the node of many-waiters: the demo service with room
// for every waiter, a fast route (/demo/echo) and a slow sync route
// (/lt/slow?ms=N) that holds its caller until the demo sleep replies.
func waitersConfig(waiters int) node.Config {
	cfg := nodeConfig("memory")
	cfg.Demo.Concurrency = waiters + 1024
	cfg.Broker.Memory.QueueSize = 2*waiters + 1024
	cfg.HTTP.MaxInFlight = waiters + 10_000
	cfg.Routes = append(cfg.Routes, node.RouteConfig{
		Name: "lt-slow", Method: "POST", Path: "/lt/slow", Destination: demo.SleepDestination,
		Mode: "sync", Timeout: 60 * time.Second,
	}, node.RouteConfig{
		// Nobody consumes its destination: a request waits for its whole
		// timeout and costs the gateway alone.
		Name: "lt-nobody", Method: "POST", Path: "/lt/nobody", Destination: "loadtest.nobody",
		Mode: "sync", Timeout: 60 * time.Second,
	}, node.RouteConfig{
		// Accepted at once and pending for its timeout: what many-streams
		// follows.
		Name: "lt-accept", Method: "POST", Path: "/lt/accept", Destination: "loadtest.nobody",
		Mode: "async", Timeout: 60 * time.Second,
	})
	return cfg
}

// ServeNode runs the many-waiters gateway node in this process for a parent
// that drives it through in and out: it writes {"addr": ...} once ready,
// then answers each line "stat" (after debug.FreeOSMemory) or "waiting" with a Stat as
// one JSON line, and stops when in ends or ctx ends. cmd/loadtest runs it
// as its hidden serve-node command: this is what lets the parent read the
// gateway's memory apart from the load generator's.
func ServeNode(ctx context.Context, in io.Reader, out io.Writer, waiters int) error {
	n, err := startNode(waitersConfig(waiters))
	if err != nil {
		return err
	}
	defer n.stop()
	enc := json.NewEncoder(out)
	if err := enc.Encode(map[string]string{"addr": strings.TrimPrefix(n.base, "http://")}); err != nil {
		return err
	}
	lines := make(chan string)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(in)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return n.stop()
		case line, ok := <-lines:
			if !ok {
				return n.stop()
			}
			st := Stat{Waiting: n.node.Gateway().Waiting(), Goroutines: runtime.NumGoroutine(), Streams: streamsOpen(n.node)}
			if line == "stat" {
				// A GC, and freed memory returned to the OS, so that RSS
				// follows what is live rather than what was once used.
				debug.FreeOSMemory()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				st.HeapAlloc, st.HeapInuse = int64(ms.HeapAlloc), int64(ms.HeapInuse)
				st.StackInuse, st.Sys = int64(ms.StackInuse), int64(ms.Sys)
				st.RSS, _ = loadtest.ReadRSS()
				st.Waiting = n.node.Gateway().Waiting()
			}
			if err := enc.Encode(st); err != nil {
				return err
			}
		}
	}
}

// child is a node started by ServeNode in another process.
type child struct {
	cmd   *exec.Cmd
	in    io.WriteCloser
	lines chan string
	addr  string
	done  chan error
}

func startChild(argv []string, waiters int) (*child, error) {
	if len(argv) == 0 {
		exe, err := os.Executable()
		if err != nil {
			return nil, err
		}
		argv = []string{exe, "serve-node"}
	}
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), WaitersEnv+"="+strconv.Itoa(waiters))
	cmd.Stderr = os.Stderr
	in, err := cmd.StdinPipe()
	if err != nil {
		return nil, err
	}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("scenario: start node process: %w", err)
	}
	c := &child{cmd: cmd, in: in, lines: make(chan string, 1), done: make(chan error, 1)}
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			c.lines <- sc.Text()
		}
		close(c.lines)
		c.done <- cmd.Wait()
	}()
	var hello struct{ Addr string }
	if err := c.read(&hello, 60*time.Second); err != nil {
		c.stop()
		return nil, err
	}
	c.addr = hello.Addr
	return c, nil
}

func (c *child) read(v any, timeout time.Duration) error {
	select {
	case line, ok := <-c.lines:
		if !ok {
			return errors.New("scenario: node process ended")
		}
		return json.Unmarshal([]byte(line), v)
	case <-time.After(timeout):
		return errors.New("scenario: node process did not answer in time")
	}
}

func (c *child) ask(what string) (Stat, error) {
	var st Stat
	if _, err := io.WriteString(c.in, what+"\n"); err != nil {
		return st, err
	}
	err := c.read(&st, 60*time.Second)
	return st, err
}

// stop closes the child's input, which stops it, and waits (bounded).
func (c *child) stop() error {
	_ = c.in.Close()
	go func() {
		for range c.lines { //nolint:revive // drain so the reader can finish
		}
	}()
	select {
	case err := <-c.done:
		return err
	case <-time.After(40 * time.Second):
		_ = c.cmd.Process.Kill()
		return errors.New("scenario: node process did not stop within 40s; killed")
	}
}

// streamsOpen reads syncgate_streams_open from the node's metrics.
func streamsOpen(n *node.Node) int {
	mfs, err := n.Metrics().Gather()
	if err != nil {
		return -1
	}
	for _, mf := range mfs {
		if mf.GetName() == "syncgate_streams_open" && len(mf.GetMetric()) == 1 {
			return int(mf.GetMetric()[0].GetGauge().GetValue())
		}
	}
	return -1
}
