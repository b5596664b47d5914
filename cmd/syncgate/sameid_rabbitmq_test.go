package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/syncgate/syncgate/brokers/rabbitmq/rabbitmqtest"
	"github.com/syncgate/syncgate/internal/testenv"
)

// rabbitAdmin requires RabbitMQ (testenv.RequireRabbitMQ), holds the server
// shared (no outage test of another package stops it meanwhile) and
// returns an admin connection.
func rabbitAdmin(t *testing.T) *amqp.Connection {
	t.Helper()
	url := testenv.RequireRabbitMQ(t)
	rabbitmqtest.Shared(t)
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = conn.Close() })
	return conn
}

// TestSameNodeIDRefusedOnRabbitMQ (issue 13, point 3): a second syncgate
// process started with the node id of a live one (examples/rabbitmq.yaml
// hard-coded gw-1) must not split the node's replies with it: it exits
// non-zero within 15 s with a message naming the node id, and the first
// one keeps answering.
func TestSameNodeIDRefusedOnRabbitMQ(t *testing.T) {
	admin := rabbitAdmin(t)
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	id := "sameid-" + hex.EncodeToString(b) // parallel runs must not clash
	t.Cleanup(func() {
		if ch, err := admin.Channel(); err == nil {
			_, _ = ch.QueueDelete("syncgate.reply."+id, false, false, false)
			_ = ch.Close()
		}
	})
	// examples/rabbitmq.yaml, with the demo service in the process so the
	// first node can answer a request by itself.
	config := filepath.Join(t.TempDir(), "rabbitmq.yaml")
	yaml := fmt.Sprintf(`addr: 127.0.0.1:0
broker:
  kind: rabbitmq
  rabbitmq:
    url: %s
    reply_queue_expiry: 30s
demo:
  enabled: true
routes:
  - {name: echo, method: POST, path: /demo/echo, destination: demo.echo, mode: sync, timeout: 10s}
`, testenv.RabbitMQURL())
	if err := os.WriteFile(config, []byte(yaml), 0o644); err != nil {
		t.Fatal(err)
	}
	args := []string{"--config", config, "--node", id}
	_, base, firstExited := startProcess(t, args...)
	echo(t, base, "before")

	second := exec.Command(os.Args[0], args...)
	second.Env = append(os.Environ(), "SYNCGATE_TEST_AS_MAIN=1")
	var out bytes.Buffer
	second.Stdout, second.Stderr = &out, &out
	if err := second.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = second.Process.Kill() })
	exited := make(chan error, 1)
	start := time.Now()
	go func() { exited <- second.Wait() }()
	select {
	case err := <-exited:
		took := time.Since(start)
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() == 0 {
			t.Fatalf("second process exited with %v after %s, want a non-zero status; output:\n%s", err, took, out.String())
		}
		if !strings.Contains(out.String(), fmt.Sprintf("%q", id)) {
			t.Errorf("the second process's output does not name the node id %q:\n%s", id, out.String())
		}
		t.Logf("second process exited after %s: %v", took, err)
	case <-time.After(15 * time.Second):
		t.Fatalf("the second process with node id %q still runs after 15s; output:\n%s", id, out.String())
	}

	select {
	case err := <-firstExited:
		t.Fatalf("the first process exited: %v", err)
	default:
	}
	echo(t, base, "after")
}

// echo sends body to the node's echo route and expects it back.
func echo(t *testing.T, base, body string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 15*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/demo/echo", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "text/plain")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	got, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK || string(got) != body {
		t.Fatalf("echo %q: %d %q, want 200 with the body back", body, resp.StatusCode, got)
	}
}
