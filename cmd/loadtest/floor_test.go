package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// floorProcess is a floor command running as a child process, as a
// scenario starts it.
type floorProcess struct {
	stdin io.WriteCloser
	line  map[string]any // the JSON line it printed once serving
	done  chan error
}

// startFloorProcess runs loadtest args in a child process and returns once
// it has printed its JSON line; the test's end closes its stdin and checks
// that it then exits 0.
func startFloorProcess(t *testing.T, args ...string) *floorProcess {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "LOADTEST_TEST_AS_MAIN=1", "GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &floorProcess{stdin: stdin, done: make(chan error, 1)}
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		if sc.Scan() {
			lines <- sc.Text()
		}
		_, _ = io.Copy(io.Discard, stdout)
		p.done <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = stdin.Close()
		select {
		case err := <-p.done:
			if err != nil {
				t.Errorf("%q exited with %v after its stdin closed\n%s", args, err, stderr.String())
			}
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			t.Errorf("%q still running 20s after its stdin closed", args)
		}
	})
	select {
	case l := <-lines:
		if err := json.Unmarshal([]byte(l), &p.line); err != nil {
			t.Fatalf("%q printed %q: %v", args, l, err)
		}
	case err := <-p.done:
		t.Fatalf("%q exited before serving: %v\n%s", args, err, stderr.String())
	case <-time.After(20 * time.Second):
		t.Fatalf("%q printed nothing within 20s\n%s", args, stderr.String())
	}
	return p
}

func postEcho(t *testing.T, url, body string) {
	t.Helper()
	resp, err := http.Post(url, "application/json", bytes.NewBufferString(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK || string(got) != body || resp.Header.Get("Content-Type") != "application/json" {
		t.Errorf("POST %s: %d %q %q %v, want 200 %q application/json", url, resp.StatusCode, got, resp.Header.Get("Content-Type"), err, body)
	}
}

// The command contract the multi-process scenarios rely on: naive-echo
// prints {"ready":true}, naive-gateway {"addr":...}, echo-server
// {"addr":...}; requests are echoed; each exits 0 when its stdin closes.
func TestFloorCommands(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(4, "demo.echo"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()[0]
	echo := startFloorProcess(t, "naive-echo", "-broker", "kafka", "-kafka-brokers", brokers, "-topic", "demo.echo")
	if echo.line["ready"] != true {
		t.Errorf("naive-echo printed %v, want ready true", echo.line)
	}
	gw := startFloorProcess(t, "naive-gateway", "-broker", "kafka", "-kafka-brokers", brokers, "-topic", "demo.echo", "-addr", "127.0.0.1:0")
	addr, _ := gw.line["addr"].(string)
	postEcho(t, "http://"+addr+"/demo/echo", `{"n":1}`)
	srv := startFloorProcess(t, "echo-server", "-addr", "127.0.0.1:0")
	addr, _ = srv.line["addr"].(string)
	postEcho(t, "http://"+addr+"/", `{"n":2}`)
}
