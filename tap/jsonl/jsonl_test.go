package jsonl_test

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/syncgate/syncgate/tap"
	"github.com/syncgate/syncgate/tap/jsonl"
)

func lines(t *testing.T, path string) []tap.Exchange {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []tap.Exchange
	sc := bufio.NewScanner(f)
	sc.Buffer(nil, 4<<20)
	for sc.Scan() {
		var x tap.Exchange
		if err := json.Unmarshal(sc.Bytes(), &x); err != nil {
			t.Fatalf("%s: line %q: %v", path, sc.Text(), err)
		}
		out = append(out, x)
	}
	return out
}

// Exchanges are written one JSON object per line, bodies byte-exact; the
// file rotates when it would outgrow max_size, and at the first write
// after rotate_every.
func TestJSONLWritesAndRotates(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "exchanges.jsonl")
	s, err := jsonl.New(jsonl.Config{Path: path, MaxSizeMB: 1, RotateEvery: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	x := tap.Exchange{Time: time.Now().UTC(), Route: "orders", CorrelationID: "id-1", Status: 200, Outcome: "reply",
		Request: tap.Request{Method: "POST", Path: "/orders", Body: []byte{0, 0xff, '\n'}},
		Reply:   &tap.Reply{Status: 200, ContentType: "application/json", Body: []byte(`{"ok":true}`)}}
	if err := s.Write(context.Background(), []tap.Exchange{x, x}); err != nil {
		t.Fatal(err)
	}
	got := lines(t, path)
	if len(got) != 2 || got[0].CorrelationID != "id-1" || string(got[0].Request.Body) != "\x00\xff\n" || string(got[1].Reply.Body) != `{"ok":true}` {
		t.Fatalf("lines %+v", got)
	}
	// 600 KiB twice: the second write would pass 1 MB, so it starts a new file.
	big := x
	big.Request.Body = []byte(strings.Repeat("a", 600<<10))
	for range 2 {
		if err := s.Write(context.Background(), []tap.Exchange{big}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	files, _ := filepath.Glob(filepath.Join(dir, "exchanges*.jsonl"))
	if len(files) != 2 {
		t.Fatalf("files after a size rotation: %v", files)
	}
	if got := lines(t, path); len(got) != 1 {
		t.Errorf("the current file holds %d lines, want the last write's 1", len(got))
	}

	timed, err := jsonl.New(jsonl.Config{Path: filepath.Join(dir, "timed.jsonl"), RotateEvery: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		time.Sleep(2 * time.Millisecond) // past rotate_every: a clock, not a synchronisation
		if err := timed.Write(context.Background(), []tap.Exchange{x}); err != nil {
			t.Fatal(err)
		}
	}
	_ = timed.Close()
	if files, _ := filepath.Glob(filepath.Join(dir, "timed*.jsonl")); len(files) < 3 {
		t.Errorf("files after time rotations: %v, want 3", files)
	}
}
