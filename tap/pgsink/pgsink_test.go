package pgsink_test

import (
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/syncgate/syncgate/internal/testenv"
	"github.com/syncgate/syncgate/tap"
	"github.com/syncgate/syncgate/tap/pgsink"
)

// Nodes starting at once create the table once; exchanges are stored one
// row each, found by correlation id, with their JSON; the lookups the
// issue names have their indexes.
func TestPostgresSink(t *testing.T) {
	url := testenv.RequirePostgres(t)
	ctx := t.Context()
	table := testenv.PostgresTable(t, url, "tap_test")
	var wg sync.WaitGroup
	sinks := make([]*pgsink.Sink, 4)
	errs := make([]error, 4)
	for i := range sinks {
		wg.Go(func() {
			if sinks[i], errs[i] = pgsink.New(pgsink.Config{URL: url, Table: table}); errs[i] == nil {
				errs[i] = sinks[i].Write(ctx, nil) // the first write migrates
			}
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Fatalf("sink %d: %v", i, err)
		}
		defer sinks[i].Close()
	}
	at := time.Date(2026, 12, 5, 14, 0, 0, 0, time.UTC)
	batch := []tap.Exchange{
		{Time: at, Node: "n1", Route: "orders", CorrelationID: "id-1", RequestID: "r1", Status: 200, Outcome: "reply", DurationMS: 1.5, BrokerMS: 0.7,
			Request: tap.Request{Method: "POST", Path: "/orders", Body: []byte("{}")}, Reply: &tap.Reply{Status: 200, Body: []byte("ok")}},
		{Time: at.Add(time.Second), Node: "n1", Route: "orders", CorrelationID: "id-2", Principal: "alice", Status: 504, Outcome: "timeout", DurationMS: 2000,
			Request: tap.Request{Method: "POST", Path: "/orders"}},
	}
	if err := sinks[0].Write(ctx, batch); err != nil {
		t.Fatal(err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var (
		status    int
		outcome   string
		principal *string
		broker    *float64
		raw       []byte
	)
	err = conn.QueryRow(ctx, "SELECT status, outcome, principal, broker_ms, exchange FROM "+table+" WHERE correlation_id = $1", "id-2").
		Scan(&status, &outcome, &principal, &broker, &raw)
	if err != nil || status != 504 || outcome != "timeout" || principal == nil || *principal != "alice" || broker != nil {
		t.Fatalf("row of id-2: %d %s %v %v, %v", status, outcome, principal, broker, err)
	}
	var x tap.Exchange
	if err := json.Unmarshal(raw, &x); err != nil || x.CorrelationID != "id-2" || !x.Time.Equal(at.Add(time.Second)) {
		t.Errorf("exchange column %s: %+v, %v", raw, x, err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table+" WHERE route = 'orders' AND time >= $1", at).Scan(&n); err != nil || n != 2 {
		t.Errorf("rows of route orders: %d, %v", n, err)
	}
	rows, err := conn.Query(ctx, "SELECT indexname FROM pg_indexes WHERE tablename = $1", table)
	if err != nil {
		t.Fatal(err)
	}
	idx, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{table + "_correlation_id", table + "_route_time", table + "_status_time", table + "_time"} {
		found := false
		for _, i := range idx {
			found = found || i == want
		}
		if !found {
			t.Errorf("index %s missing: %v", want, idx)
		}
	}
	if _, err := pgsink.New(pgsink.Config{URL: url, Table: "Bad-Name"}); err == nil {
		t.Error("a table name that is not an identifier was accepted")
	}
	// A database that is not there: New succeeds, writes fail.
	down, err := pgsink.New(pgsink.Config{URL: "postgres://postgres@127.0.0.1:1/test?sslmode=disable&connect_timeout=2", Table: table})
	if err != nil {
		t.Fatalf("New on a database that is down: %v", err)
	}
	defer down.Close()
	if err := down.Write(ctx, batch); err == nil {
		t.Error("a write to a database that is down succeeded")
	}
}

// What PostgreSQL refuses in text and jsonb (NUL, invalid UTF-8) is
// cleaned, so that one odd request does not fail its whole batch; a
// backslash followed by u0000 as text is kept as it is.
func TestPostgresSinkCleansText(t *testing.T) {
	url := testenv.RequirePostgres(t)
	ctx := t.Context()
	table := testenv.PostgresTable(t, url, "tap_clean")
	s, err := pgsink.New(pgsink.Config{URL: url, Table: table})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	batch := []tap.Exchange{
		{Time: time.Now(), Node: "n1", Route: "orders", CorrelationID: "odd", RequestID: "r\xff1", Principal: "al\x00ice",
			Status: 200, Outcome: "reply",
			Request: tap.Request{Method: "POST", Path: "/o/\x00/\xfe", Header: map[string][]string{"X-Note": {`lit\u0000eral`}}},
			Reply:   &tap.Reply{Status: 200, Header: map[string]string{"x-nul": "a\x00b"}}},
		{Time: time.Now(), Node: "n1", Route: "orders", CorrelationID: "plain", Status: 200, Outcome: "reply",
			Request: tap.Request{Method: "GET", Path: "/o/1"}},
	}
	if err := s.Write(ctx, batch); err != nil {
		t.Fatalf("Write of a batch with NUL and invalid UTF-8: %v", err)
	}
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	var (
		reqID, principal, path string
		raw                    []byte
	)
	err = conn.QueryRow(ctx, "SELECT request_id, principal, path, exchange FROM "+table+" WHERE correlation_id = 'odd'").
		Scan(&reqID, &principal, &path, &raw)
	if err != nil {
		t.Fatal(err)
	}
	if reqID != "r\uFFFD1" || principal != "alice" || path != "/o//\uFFFD" {
		t.Errorf("text columns: %q %q %q", reqID, principal, path)
	}
	var x tap.Exchange
	if err := json.Unmarshal(raw, &x); err != nil {
		t.Fatal(err)
	}
	if x.Reply == nil || x.Reply.Header["x-nul"] != "a\uFFFDb" || x.Request.Header["X-Note"][0] != `lit\u0000eral` {
		t.Errorf("exchange column: %s", raw)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM "+table).Scan(&n); err != nil || n != 2 {
		t.Errorf("rows: %d, %v; want both", n, err)
	}
}
