package node_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/brokers/kafka"
	"github.com/syncgate/syncgate/internal/node"
	"github.com/syncgate/syncgate/internal/testenv"
)

// duplicateKey returns the first key that occurs twice in one object of
// the JSON line ("" if none).
func duplicateKey(line string) (string, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	var walk func() (string, error)
	walk = func() (string, error) {
		tok, err := dec.Token()
		if err != nil {
			return "", err
		}
		switch tok {
		case json.Delim('{'):
			seen := map[string]bool{}
			for dec.More() {
				k, err := dec.Token()
				if err != nil {
					return "", err
				}
				key := k.(string)
				if seen[key] {
					return key, nil
				}
				seen[key] = true
				if d, err := walk(); d != "" || err != nil {
					return d, err
				}
			}
			_, err = dec.Token()
			return "", err
		case json.Delim('['):
			for dec.More() {
				if d, err := walk(); d != "" || err != nil {
					return d, err
				}
			}
			_, err = dec.Token()
			return "", err
		}
		return "", nil
	}
	return walk()
}

// TestLogHygiene: a Kafka node's start-up, one request, probes, a poll for
// an id that is not one, and shutdown log no line with a repeated key, no
// correlation_id that is not an id, and the probes' access lines only at
// debug.
func TestLogHygiene(t *testing.T) {
	port := testenv.FreePort(t)
	kf := startKfake(t, port)
	t.Cleanup(kf.Close)
	cfg := testConfig()
	cfg.Node = "logs-" + strconv.Itoa(port)
	cfg.Broker.Kind = "kafka"
	cfg.Broker.Kafka = kafka.Config{Brokers: []string{fmt.Sprintf("127.0.0.1:%d", port)}}
	cfg.SetDefaults()
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	var logs testenv.SyncBuffer
	n, err := node.New(cfg, slog.New(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- n.Run(ctx) }()
	select {
	case <-n.Ready():
	case err := <-done:
		t.Fatal(err)
	case <-time.After(30 * time.Second):
		cancel()
		<-done
		t.Fatal("not ready")
	}
	base := "http://" + n.Addr()
	resp, err := http.Post(base+"/demo/echo", "text/plain", strings.NewReader("hello"))
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("echo: %d", resp.StatusCode)
	}
	for _, p := range []string{"/healthz", "/readyz", "/metrics", "/v1/requests/notauuid"} {
		status(t, base+p)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	sc.Buffer(nil, 1<<20)
	lines, requests := 0, 0
	for sc.Scan() {
		line := sc.Text()
		lines++
		if k, err := duplicateKey(line); err != nil || k != "" {
			t.Errorf("key %q repeated (%v) in %s", k, err, line)
		}
		var m map[string]any
		if err := json.Unmarshal([]byte(line), &m); err != nil {
			t.Fatal(err)
		}
		if m["correlation_id"] == "notauuid" {
			t.Errorf("an invalid id logged as correlation_id: %s", line)
		}
		if m["msg"] == "request" {
			requests++
			switch m["path"] {
			case "/healthz", "/readyz", "/metrics":
				if m["level"] != "DEBUG" {
					t.Errorf("probe access line at %v: %s", m["level"], line)
				}
			}
		}
	}
	if lines == 0 || requests < 5 {
		t.Fatalf("%d lines, %d access lines: the test saw no logs", lines, requests)
	}
}
