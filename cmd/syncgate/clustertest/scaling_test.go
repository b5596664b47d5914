package clustertest

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	goredis "github.com/redis/go-redis/v9"

	"github.com/syncgate/syncgate/brokers/envelope"
	"github.com/syncgate/syncgate/internal/testenv"
)

// scalingDoc is the capacity plan whose table of Redis work per request
// TestRedisWorkPerRequest measures; the table sits between these markers.
const (
	scalingDoc   = "../../../docs/scaling.md"
	scalingBegin = "<!-- redis-per-request:begin (written by TestRedisWorkPerRequest; SYNCGATE_WRITE_SCALING=1 rewrites it) -->"
	scalingEnd   = "<!-- redis-per-request:end -->"
)

// requestKind is one way a request uses Redis, as the capacity plan
// counts them.
type requestKind struct {
	name   string
	route  string
	header []string
	// forward: the service answers to the other node's reply address.
	forward bool
	// poll: the request is answered 202 and polled on node b.
	poll bool
}

var requestKinds = []requestKind{
	{name: "sync (reply to the waiting node)", route: routeEchoSync},
	{name: "auto, answered within the wait", route: routeEcho},
	{name: "async: 202, then one poll on another node", route: routeEcho, header: []string{"Prefer", "respond-async"}, poll: true},
	{name: "sync with an Idempotency-Key", route: routeEchoSync, header: []string{"Idempotency-Key", ""}},
	{name: "sync, reply consumed by another node (forwarded)", route: routeEchoSync, forward: true},
	{name: "auto, reply consumed by another node (stored and forwarded)", route: routeEcho, forward: true},
}

// TestRedisWorkPerRequest counts, with MONITOR on the nodes' private
// Redis, the commands every kind of request costs Redis: round trips (the
// commands the nodes send) and commands run (with those inside Lua
// scripts), and the bytes of the commands sent. Lease refreshes, adoption
// rounds and readiness pings, which cost per node and not per request,
// are left out. The table in docs/scaling.md must be what this test
// measures, so the capacity plan cannot drift from the code.
func TestRedisWorkPerRequest(t *testing.T) {
	const perKind = 40
	c := newCluster(t, "a", "b")
	startService(t, c, func(req envelope.Request, owner string) decision {
		if strings.HasPrefix(string(req.Body), "fwd ") {
			return decision{node: otherNode([]string{"a", "b"}, owner)}
		}
		return decision{node: owner}
	})
	a, b := c.Node("a"), c.Node("b")
	rdb := goredis.NewClient(&goredis.Options{Addr: c.redis.Addr()})
	t.Cleanup(func() { _ = rdb.Close() })
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()

	// stored tells, on a connection of its own whose commands the count
	// leaves out, whether id's result is stored: the poll then reads it
	// once, where a poll racing the reply would read it pending, wait and
	// read it again.
	probe, err := net.DialTimeout("tcp", c.redis.Addr(), 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = probe.Close() })
	probeReader := bufio.NewReader(probe)
	self := probe.LocalAddr().String()
	stored := func(id string) bool {
		key := "clustertest:result:{" + id + "}"
		if _, err := fmt.Fprintf(probe, "*3\r\n$4\r\nHGET\r\n$%d\r\n%s\r\n$5\r\nstate\r\n", len(key), key); err != nil {
			t.Fatal(err)
		}
		head, err := probeReader.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if head == "$-1\r\n" {
			return false
		}
		val, err := probeReader.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(val) == "done"
	}

	send := func(k requestKind, i int) {
		body := fmt.Sprintf("req %d %016x", i, runNonce)
		if k.forward {
			body = "fwd " + body
		}
		header := slices.Clone(k.header)
		if len(header) == 2 && header[1] == "" {
			header[1] = fmt.Sprintf("key-%d-%016x", i, runNonce)
		}
		resp, err := c.post(ctx, a, k.route, body, header...)
		if err != nil {
			t.Fatal(err)
		}
		if !k.poll {
			if resp.status != http.StatusOK || resp.body != body {
				t.Fatalf("%s: %d %q", k.name, resp.status, resp.body)
			}
			return
		}
		if resp.status != http.StatusAccepted {
			t.Fatalf("%s: %d %q, want 202", k.name, resp.status, resp.body)
		}
		testenv.Eventually(t, 10*time.Second, "the reply stored", func() bool { return stored(resp.id) })
		if status, got := c.poll(b, resp.id); status != http.StatusOK || got != body {
			t.Fatalf("%s: poll on b: %d %q", k.name, status, got)
		}
	}
	// Warm-up, not counted: every script is then in Redis's script cache,
	// so no EVALSHA fails over to EVAL in the count.
	for i, k := range requestKinds {
		send(k, -1-i)
	}

	var rows []scalingRow
	for _, k := range requestKinds {
		lines, stopMonitor := monitor(t, c.redis.Addr())
		marker := fmt.Sprintf("scaling:begin:%016x", runNonce)
		if err := rdb.Echo(ctx, marker).Err(); err != nil {
			t.Fatal(err)
		}
		for i := range perKind {
			send(k, i)
		}
		end := fmt.Sprintf("scaling:end:%016x", runNonce)
		if err := rdb.Echo(ctx, end).Err(); err != nil {
			t.Fatal(err)
		}
		row := scalingRow{kind: k.name}
		started := false
	read:
		for {
			select {
			case line := <-lines:
				switch {
				case strings.Contains(line, marker):
					started = true
				case strings.Contains(line, end):
					break read
				case started && !strings.Contains(line, " "+self+"]"):
					row.add(line)
				}
			case <-ctx.Done():
				t.Fatalf("%s: MONITOR never showed the end marker", k.name)
			}
		}
		stopMonitor()
		row.per(perKind)
		t.Logf("%s: %s", k.name, row.detail())
		rows = append(rows, row)
	}

	table := scalingTable(rows)
	doc, err := os.ReadFile(scalingDoc)
	if err != nil {
		t.Fatal(err)
	}
	i, j := strings.Index(string(doc), scalingBegin), strings.Index(string(doc), scalingEnd)
	if i < 0 || j < i {
		t.Fatalf("%s lacks the markers %q and %q", scalingDoc, scalingBegin, scalingEnd)
	}
	current := string(doc[i+len(scalingBegin) : j])
	if os.Getenv("SYNCGATE_WRITE_SCALING") == "1" {
		out := string(doc[:i+len(scalingBegin)]) + table + string(doc[j:])
		if err := os.WriteFile(scalingDoc, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if strings.TrimSpace(current) != strings.TrimSpace(table) {
		t.Errorf("the table in %s is not what the code costs Redis; measured (SYNCGATE_WRITE_SCALING=1 go test -run TestRedisWorkPerRequest ./cmd/syncgate/clustertest rewrites it):\n%s", scalingDoc, table)
	}
}

// monitor runs MONITOR on its own connection to addr (go-redis's Monitor
// loses the connection in this version: "Conn has unread data") and sends
// every line to the returned channel until stop.
func monitor(t *testing.T, addr string) (<-chan string, func()) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Write([]byte("MONITOR\r\n")); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	if ok, err := r.ReadString('\n'); err != nil || ok != "+OK\r\n" {
		t.Fatalf("MONITOR: %q, %v", ok, err)
	}
	lines := make(chan string, 100_000)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			select {
			case lines <- strings.TrimSuffix(strings.TrimPrefix(line, "+"), "\r\n"):
			default: // the test reads them all; a full channel is its failure
			}
		}
	}()
	stop := func() {
		_ = conn.Close()
		<-done
	}
	t.Cleanup(stop)
	return lines, stop
}

// scalingRow is what one kind of request costs Redis, per request.
type scalingRow struct {
	kind            string
	trips, commands float64 // round trips; commands run, those of scripts included
	sent            float64 // bytes of the commands sent (RESP)
	names           map[string]float64
}

// monitorLine is a MONITOR line: time, [db client], then the quoted
// command and arguments.
var monitorLine = regexp.MustCompile(`^[0-9.]+ \[\d+ ([^\]]+)\] (.*)$`)

var quotedArg = regexp.MustCompile(`"((?:[^"\\]|\\.)*)"`)

// add counts one MONITOR line unless it is per-node work: membership,
// leases and adoptions (keys under {nodes}), the listener's probe (its
// ROLE and its publish), readiness pings.
func (r *scalingRow) add(line string) {
	m := monitorLine.FindStringSubmatch(line)
	if m == nil || strings.Contains(line, "{nodes}") || strings.Contains(line, `"syncgate:probe"`) {
		return // per node: membership, leases, adoptions, the listener's probe
	}
	args := quotedArg.FindAllStringSubmatch(m[2], -1)
	if len(args) == 0 {
		return
	}
	name := strings.ToUpper(args[0][1])
	if name == "PING" || name == "ECHO" || name == "INFO" || name == "CLIENT" || name == "HELLO" || name == "ROLE" {
		return
	}
	if r.names == nil {
		r.names = make(map[string]float64)
	}
	r.commands++
	if m[1] == "lua" {
		name += " (script)"
	} else {
		r.trips++
		// RESP: *N\r\n, then $len\r\narg\r\n per argument.
		r.sent += float64(len(strconv.Itoa(len(args))) + 3)
		for _, a := range args {
			n, _ := strconv.Unquote(`"` + a[1] + `"`)
			r.sent += float64(len(n) + len(strconv.Itoa(len(n))) + 5)
		}
	}
	r.names[name]++
}

func (r *scalingRow) per(n int) {
	r.trips /= float64(n)
	r.commands /= float64(n)
	r.sent /= float64(n)
	for k := range r.names {
		r.names[k] /= float64(n)
	}
}

func (r scalingRow) detail() string {
	var parts []string
	for _, k := range slices.Sorted(func(yield func(string) bool) {
		for k := range r.names {
			if !yield(k) {
				return
			}
		}
	}) {
		parts = append(parts, fmt.Sprintf("%s %s", k, trimFloat(r.names[k])))
	}
	return strings.Join(parts, ", ")
}

// trimFloat formats x with one decimal, without a trailing ".0".
func trimFloat(x float64) string {
	s := strconv.FormatFloat(x, 'f', 1, 64)
	return strings.TrimSuffix(s, ".0")
}

func scalingTable(rows []scalingRow) string {
	var b strings.Builder
	b.WriteString("\n| request | round trips | commands run | bytes sent | commands |\n|---|---:|---:|---:|---|\n")
	for _, r := range rows {
		// Bytes vary with the id and key lengths by a few; round to 10.
		fmt.Fprintf(&b, "| %s | %s | %s | %d | %s |\n", r.kind, trimFloat(r.trips), trimFloat(r.commands), int(r.sent/10+0.5)*10, r.detail())
	}
	return b.String()
}
