package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestRunURL(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("X-Test") != "yes" || r.Method != http.MethodPut {
			w.WriteHeader(http.StatusBadRequest)
		}
	}))
	t.Cleanup(srv.Close)
	dir := t.TempDir()
	var stdout, stderr bytes.Buffer
	err := run(t.Context(), []string{"run", "-url", srv.URL, "-method", "PUT", "-H", "X-Test: yes", "-body", "x",
		"-rate", "100", "-duration", "500ms", "-warmup", "0s", "-name", "t",
		"-json", filepath.Join(dir, "r.json"), "-plot-dir", dir}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr.String())
	}
	if !strings.Contains(stdout.String(), "| t | open | 100 req/s | 50 |") || !strings.Contains(stdout.String(), "200×50") {
		t.Errorf("table:\n%s", stdout.String())
	}
	var rs []map[string]any
	b, err := os.ReadFile(filepath.Join(dir, "r.json"))
	if err != nil || json.Unmarshal(b, &rs) != nil || len(rs) != 1 {
		t.Fatalf("JSON %s: %v", b, err)
	}
	for _, f := range []string{"latency.svg", "percentiles.svg"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Error(err)
		}
	}
}

func TestUsageErrors(t *testing.T) {
	for _, args := range [][]string{{}, {"nope"}, {"run"}, {"scenario"}, {"scenario", "nope"}} {
		var out bytes.Buffer
		if err := run(t.Context(), args, &out, &out); err == nil {
			t.Errorf("%q: want an error", args)
		}
	}
}
