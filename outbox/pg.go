package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// PG is a Store in a PostgreSQL table (syncgate_outbox by default), shared
// by every node. One relay at a time publishes (Lead: a session advisory
// lock, which PostgreSQL releases when its holder's connection ends, so
// that a node that dies hands over at once); Claim takes rows with FOR
// UPDATE SKIP LOCKED and leases them all the same, so that two relays
// never take the same row even in the window where a relay that lost its
// lock finishes its round.
type PG struct {
	pool  *pgxpool.Pool
	name  string // the table's name, unquoted: the lock's key
	table string // sanitized
	max   int

	mu   sync.Mutex
	lead *pgxpool.Conn // holds the advisory lock, while this store leads

	// counted is the table's row count read at countedAt, plus this
	// store's puts since (see room); guarded by countMu.
	countMu   sync.Mutex
	counted   int
	countedAt time.Time
}

// OpenPG connects to url and creates the table if needed; it holds at
// most max items (0: 100 000).
func OpenPG(ctx context.Context, url, table string, max int) (*PG, error) {
	if table == "" {
		table = "syncgate_outbox"
	}
	if max <= 0 {
		max = 100_000
	}
	pool, err := pgxpool.New(ctx, url)
	if err != nil {
		return nil, fmt.Errorf("outbox: %w", err)
	}
	p := &PG{pool: pool, name: table, table: pgx.Identifier{table}.Sanitize(), max: max}
	_, err = pool.Exec(ctx, `CREATE TABLE IF NOT EXISTS `+p.table+` (
		seq          bigserial PRIMARY KEY,
		id           text NOT NULL UNIQUE,
		dest         text NOT NULL,
		message      jsonb NOT NULL,
		queued       timestamptz NOT NULL,
		deadline     timestamptz NOT NULL,
		leased_until timestamptz
	)`)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("outbox: create %s: %w", p.table, err)
	}
	return p, nil
}

type pgMessage struct {
	Key     string            `json:"key,omitempty"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    []byte            `json:"body,omitempty"`
}

// Put queues it. Room is checked against a count of the table read at
// most once a second (count(*) reads every row: at 100 000 queued, once
// per put would cost the most when the queue grows fastest), plus this
// node's puts since; nodes putting at once can pass max by what they put
// within that second.
func (p *PG) Put(ctx context.Context, it Item) error {
	m, err := json.Marshal(pgMessage{Key: it.Message.Key, Headers: it.Message.Headers, Body: it.Message.Body})
	if err != nil {
		return err
	}
	if ok, err := p.room(ctx); err != nil {
		return err
	} else if !ok {
		if queued, err := p.Has(ctx, it.ID); err == nil && queued {
			return ErrExists
		}
		return ErrFull
	}
	tag, err := p.pool.Exec(ctx, `INSERT INTO `+p.table+` (id, dest, message, queued, deadline)
		VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`,
		it.ID, it.Dest, m, it.Queued, it.Deadline)
	switch {
	case err != nil:
		return fmt.Errorf("outbox: put: %w", err)
	case tag.RowsAffected() == 0:
		return ErrExists
	}
	return nil
}

// room reports whether one more item fits, counting it.
func (p *PG) room(ctx context.Context) (bool, error) {
	p.countMu.Lock()
	defer p.countMu.Unlock()
	if time.Since(p.countedAt) >= time.Second || p.counted >= p.max {
		var n int
		if err := p.pool.QueryRow(ctx, `SELECT count(*) FROM `+p.table).Scan(&n); err != nil {
			return false, fmt.Errorf("outbox: put: count: %w", err)
		}
		p.counted, p.countedAt = n, time.Now()
	}
	if p.counted >= p.max {
		return false, nil
	}
	p.counted++
	return true, nil
}

// Claim leases up to n of the oldest rows nobody holds.
func (p *PG) Claim(ctx context.Context, n int, lease time.Duration) ([]Item, error) {
	rows, err := p.pool.Query(ctx, `UPDATE `+p.table+` SET leased_until = now() + $2 * interval '1 millisecond'
		WHERE seq IN (SELECT seq FROM `+p.table+`
			WHERE leased_until IS NULL OR leased_until < now()
			ORDER BY seq LIMIT $1 FOR UPDATE SKIP LOCKED)
		RETURNING seq, id, dest, message, queued, deadline`, n, lease.Milliseconds())
	if err != nil {
		return nil, fmt.Errorf("outbox: claim: %w", err)
	}
	defer rows.Close()
	var out []Item
	for rows.Next() {
		var it Item
		var m []byte
		if err := rows.Scan(&it.Seq, &it.ID, &it.Dest, &m, &it.Queued, &it.Deadline); err != nil {
			return nil, fmt.Errorf("outbox: claim: %w", err)
		}
		var pm pgMessage
		if err := json.Unmarshal(m, &pm); err != nil {
			return nil, fmt.Errorf("outbox: claim: item %s: %w", it.ID, err)
		}
		it.Message = messageOf(pm.Key, pm.Headers, pm.Body)
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("outbox: claim: %w", err)
	}
	// RETURNING does not keep the subquery's order.
	sortBySeq(out)
	return out, nil
}

// Done removes the row of id.
func (p *PG) Done(ctx context.Context, id string) error {
	if _, err := p.pool.Exec(ctx, `DELETE FROM `+p.table+` WHERE id = $1`, id); err != nil {
		return fmt.Errorf("outbox: done: %w", err)
	}
	return nil
}

// Has reports whether a row of id waits.
func (p *PG) Has(ctx context.Context, id string) (bool, error) {
	var ok bool
	if err := p.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM `+p.table+` WHERE id = $1)`, id).Scan(&ok); err != nil {
		return false, fmt.Errorf("outbox: has: %w", err)
	}
	return ok, nil
}

// Stats returns the depth and the oldest row's queue time.
func (p *PG) Stats(ctx context.Context) (int, time.Time, error) {
	var depth int
	var oldest *time.Time
	if err := p.pool.QueryRow(ctx, `SELECT count(*), min(queued) FROM `+p.table).Scan(&depth, &oldest); err != nil {
		return 0, time.Time{}, fmt.Errorf("outbox: stats: %w", err)
	}
	if oldest == nil {
		return depth, time.Time{}, nil
	}
	return depth, *oldest, nil
}

// Lead reports whether this store's relay is the one that publishes,
// taking the lead when nobody holds it: it confirms a lead it holds (a
// connection that broke lost it), or tries the advisory lock. On taking
// the lead it frees every lease, since their relays no longer publish, so
// that the items are published again at once, in order.
func (p *PG) Lead(ctx context.Context) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.lead != nil {
		if err := p.lead.Ping(ctx); err == nil {
			return true, nil
		}
		p.dropLead()
	}
	conn, err := p.pool.Acquire(ctx)
	if err != nil {
		return false, fmt.Errorf("outbox: lead: %w", err)
	}
	var held bool
	if err := conn.QueryRow(ctx, `SELECT pg_try_advisory_lock(hashtext($1))`, "syncgate_outbox:"+p.name).Scan(&held); err != nil {
		_ = conn.Conn().Close(context.WithoutCancel(ctx)) // its lock state is unknown: not back to the pool
		conn.Release()
		return false, fmt.Errorf("outbox: lead: %w", err)
	}
	if !held {
		conn.Release()
		return false, nil
	}
	p.lead = conn
	if _, err := conn.Exec(ctx, `UPDATE `+p.table+` SET leased_until = NULL WHERE leased_until IS NOT NULL`); err != nil {
		p.dropLead()
		return false, fmt.Errorf("outbox: lead: free the leases: %w", err)
	}
	return true, nil
}

// dropLead closes the connection that held the lock, which releases it;
// p.mu is held.
func (p *PG) dropLead() {
	_ = p.lead.Conn().Close(context.Background())
	p.lead.Release()
	p.lead = nil
}

// Close gives up the lead and closes the connections. The lock is
// released explicitly: a closed connection releases it too, but only once
// its server process has noticed, a moment later.
func (p *PG) Close() error {
	p.mu.Lock()
	if p.lead != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, _ = p.lead.Exec(ctx, `SELECT pg_advisory_unlock_all()`)
		cancel()
		p.dropLead()
	}
	p.mu.Unlock()
	p.pool.Close()
	return nil
}

// Release frees the leases of ids.
func (p *PG) Release(ctx context.Context, ids []string) error {
	if _, err := p.pool.Exec(ctx, `UPDATE `+p.table+` SET leased_until = NULL WHERE id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("outbox: release: %w", err)
	}
	return nil
}
