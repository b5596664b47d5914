package testenv

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresTable returns a table name, prefix followed by random hex, for
// a test on the database at url; when the test ends the table is dropped
// and its row in syncgate_schema (a tap sink's migrations), if any,
// deleted.
func PostgresTable(t testing.TB, url, prefix string) string {
	t.Helper()
	table := fmt.Sprintf("%s_%08x", prefix, rand.Uint32())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, url)
		if err != nil {
			t.Errorf("cleanup of table %s: %v", table, err)
			return
		}
		defer conn.Close(ctx)
		_, _ = conn.Exec(ctx, "DROP TABLE IF EXISTS "+table)
		_, _ = conn.Exec(ctx, "DELETE FROM syncgate_schema WHERE name = $1", `"`+table+`"`)
	})
	return table
}
