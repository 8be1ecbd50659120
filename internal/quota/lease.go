// Package quota also serves hot tenant-dimensions from per-node leases (Leaser, lease.go).
//
// Service.Consume is exact but commits once per call, and every consume of one tenant-dimension
// queues on one row: a few thousand per second at most. A Leaser sits in front of it. While a
// tenant-dimension is cold on this node (at most Threshold consumes in the last second) it calls
// Service.Consume unchanged. Once it is hot, the node moves a chunk of the allowance into a lease
// with one guarded statement (the same reset-aware period logic and the same allowance as
// consumeSQL, burst excepted) and answers consumes from memory, per key under a mutex:
//
//   - a consume reserves its amount from the lease, and is answered only once its record is
//     committed: flushers commit the waiting records in batches (group commit), in one statement
//     that locks the batch's leases (FOR UPDATE, returned_at IS NULL, period not over), records
//     each consume under its idempotency key (a key seen before gives its amount back to the lease
//     and is answered with its first answer), appends the usage events and adds what was recorded
//     to the lease's consumed;
//   - when the lease cannot cover an amount the node takes another chunk; chunks shrink near the
//     limit (max(amount, min(MaxChunk, remaining/4))), so what sits unspent in leases is small
//     exactly when it matters;
//   - when no chunk fits, the node gives its own lease's remainder back, reconciles expired leases
//     of the key, waits (at most about TTL) for other nodes' leases that could still cover the
//     amount, and then asks Service.Consume, which answers exactly: granted (the burst allowance,
//     which leases never cover, is only ever consumed there) or refused and recorded;
//   - a lease is returned (granted - consumed back to the counter, if the period has not changed)
//     when it expires (TTL), when its key goes quiet, and on Close; a node that crashes leaves
//     its leases to the reconciler (ReconcileLeases, a periodic job, and the denial path above),
//     which returns them once they are past expires_at + Grace. Returns lock the lease row like
//     the flusher does, so a record can never be committed against a returned lease: such a
//     record is retried on a fresh lease, or refused with ErrLeaseUnavailable — never granted.
//
// What "used" means in lease mode: quota_limits.used counts every unit moved into a lease,
// consumed or not, until the lease is returned; so GET /quota and the admin pages may show up to
// one chunk per node more than was consumed (at most MaxChunk, and at most a quarter of what was
// left). A consume answered from a lease reports used as this node sees it: the counter when the
// lease was taken (without the chunk) plus what this lease has granted so far, so concurrent
// consumption on other nodes is not in it. The units granted never exceed the allowance, on any
// number of nodes; after leases are returned, used equals the units granted again.
package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// ErrLeaseUnavailable means a consume could not be recorded against a lease (it was returned or
// reconciled while the consume waited, or the node is stopping). Nothing was consumed; the caller
// may retry with the same idempotency key (the API answers 503).
var ErrLeaseUnavailable = errors.New("quota: lease unavailable, retry")

// Lease defaults.
const (
	DefaultLeaseThreshold = 100
	DefaultLeaseMaxChunk  = 2000
	DefaultLeaseTTL       = 3 * time.Second
	DefaultLeaseGrace     = time.Second
)

// LeaseConfig tunes a Leaser. Zero values mean the defaults.
type LeaseConfig struct {
	// Threshold is how many consumes per second of one tenant-dimension make it hot on this node
	// (more than Threshold). 0 makes every counter dimension hot at once; negative turns leases off.
	Threshold int
	// MaxChunk is the largest chunk one lease takes.
	MaxChunk int64
	// TTL is how long a lease lives; the node stops using it a little before.
	TTL time.Duration
	// Grace is how long after expires_at the reconciler waits before taking a lease back.
	Grace time.Duration
	// MaxBatch bounds the records committed in one flush; Flushers is how many flushes may run at once.
	MaxBatch int
	Flushers int
	// NodeID names this process in quota_leases; empty means host-pid-random.
	NodeID string
	Log    *slog.Logger
}

// LeaseConfigFromEnv reads TENANTRY_QUOTA_LEASE_THRESHOLD (consumes per second, or "off").
func LeaseConfigFromEnv() (LeaseConfig, error) {
	c := LeaseConfig{Threshold: DefaultLeaseThreshold}
	switch v := strings.TrimSpace(os.Getenv("TENANTRY_QUOTA_LEASE_THRESHOLD")); v {
	case "":
	case "off":
		c.Threshold = -1
	default:
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return c, fmt.Errorf("TENANTRY_QUOTA_LEASE_THRESHOLD must be a number of consumes per second (0 or more) or off, not %q", v)
		}
		c.Threshold = n
	}
	return c, nil
}

func (c *LeaseConfig) defaults() {
	if c.MaxChunk <= 0 {
		c.MaxChunk = DefaultLeaseMaxChunk
	}
	if c.TTL <= 0 {
		c.TTL = DefaultLeaseTTL
	}
	if c.Grace <= 0 {
		c.Grace = DefaultLeaseGrace
	}
	if c.MaxBatch <= 0 {
		c.MaxBatch = 512
	}
	if c.Flushers <= 0 {
		c.Flushers = 2
	}
	if c.NodeID == "" {
		host, _ := os.Hostname()
		r := make([]byte, 4)
		_, _ = rand.Read(r)
		c.NodeID = fmt.Sprintf("%s-%d-%s", host, os.Getpid(), hex.EncodeToString(r))
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
}

// Leaser answers consumes, from leases for hot tenant-dimensions and through Service.Consume for
// the others. It is safe for concurrent use. Close returns its leases.
type Leaser struct {
	svc  *Service
	pool *pgxpool.Pool
	cfg  LeaseConfig

	ctx    context.Context // cancelled: the node is gone (crash simulation) or closed
	cancel context.CancelFunc
	closed atomic.Bool

	mu   sync.Mutex
	keys map[leaseKey]*leaseEntry

	queue    chan *leaseRecord
	wg       sync.WaitGroup // flushers and the sweeper
	retiring sync.WaitGroup // leases being returned

	stats LeaseStats
}

// LeaseStats counts what a Leaser did (for tests, benchmarks and metrics).
type LeaseStats struct {
	Acquired, Returned, Flushes, Records, Direct, Retried atomic.Int64
	FlushTime                                             atomic.Int64 // nanoseconds spent in flush statements
}

type leaseKey struct {
	tenant int64
	dim    string
}

// leaseEntry is one tenant-dimension on this node.
type leaseEntry struct {
	mu    sync.Mutex
	dead  bool // swept from the map: look it up again
	lease *lease
	// Hotness: consumes in the current one-second window and in the previous one.
	winStart    time.Time
	count, prev int
	lastUse     time.Time
	// A recent check found no chunk fits and no other lease that could help: go straight to
	// Service.Consume until then.
	exhaustedUntil time.Time
}

// lease is a chunk of allowance this node holds.
type lease struct {
	id          int64
	d           Dimension
	tenant      int64
	granted     int64
	base        int64 // the counter before the chunk was taken
	soft, hard  int64
	allowance   int64 // hard + grants when the lease was taken
	start       pgtime
	usableUntil time.Time // local clock: a margin before expires_at
	periodEnd   time.Time // zero: the dimension never resets

	mu       sync.Mutex
	taken    int64 // reserved or recorded
	lost     bool  // the database refused records for it: returned elsewhere or its period ended
	inflight sync.WaitGroup
}

func (l *lease) usable(now time.Time) bool {
	return !l.lost && now.Before(l.usableUntil) && (l.periodEnd.IsZero() || now.Before(l.periodEnd))
}

// leaseRecord is a consume reserved from a lease, waiting for its commit.
type leaseRecord struct {
	l      *lease
	key    string
	amount int64
	used   int64 // the answer's used, as this node sees it
	done   chan leaseOutcome
}

type leaseOutcome struct {
	res    Result
	err    error
	lost   bool // not recorded: retry on another lease
	replay bool // the key was recorded before: answer its first answer
}

// NewLeaser starts a Leaser on svc. Cancelling ctx stops it at once without returning its leases
// (as a crash would; the reconciler takes them back); Close is the orderly stop.
func NewLeaser(ctx context.Context, svc *Service, cfg LeaseConfig) *Leaser {
	cfg.defaults()
	ctx, cancel := context.WithCancel(ctx)
	lr := &Leaser{svc: svc, pool: svc.db.AppPool, cfg: cfg, ctx: ctx, cancel: cancel,
		keys: map[leaseKey]*leaseEntry{}, queue: make(chan *leaseRecord, 8192)}
	for range cfg.Flushers {
		lr.wg.Add(1)
		go lr.flusher()
	}
	lr.wg.Add(1)
	go lr.sweeper()
	return lr
}

// NodeID is the name this Leaser records on its leases.
func (lr *Leaser) NodeID() string { return lr.cfg.NodeID }

// Stats are the Leaser's counters.
func (lr *Leaser) Stats() *LeaseStats { return &lr.stats }

// Consume is Service.Consume, answered from a lease when the tenant-dimension is hot on this node.
// It grants, refuses and replays exactly as Service.Consume does, and may also fail with
// ErrLeaseUnavailable (nothing consumed; retry).
func (lr *Leaser) Consume(ctx context.Context, tenantID int64, dimension string, amount int64, idempotencyKey string) (Result, error) {
	if lr.cfg.Threshold < 0 || lr.closed.Load() || lr.ctx.Err() != nil {
		return lr.svc.Consume(ctx, tenantID, dimension, amount, idempotencyKey)
	}
	d, err := lr.svc.dimension(ctx, dimension)
	if err != nil {
		return Result{}, err
	}
	if amount <= 0 || amount > MaxAmount {
		return Result{}, fmt.Errorf("%w: %d is not between 1 and %d", ErrBadAmount, amount, MaxAmount)
	}
	if idempotencyKey == "" || len(idempotencyKey) > 255 {
		return Result{}, ErrBadIdempotencyKey
	}
	if d.Kind != Counter {
		return lr.svc.Consume(ctx, tenantID, dimension, amount, idempotencyKey)
	}
	k := leaseKey{tenantID, dimension}
	now := time.Now()
	var e *leaseEntry
	for {
		lr.mu.Lock()
		e = lr.keys[k]
		if e == nil {
			e = &leaseEntry{winStart: now}
			lr.keys[k] = e
		}
		lr.mu.Unlock()
		e.mu.Lock()
		if !e.dead {
			break
		}
		e.mu.Unlock()
	}
	// Count this consume in the key's one-second window.
	if now.Sub(e.winStart) >= time.Second {
		if now.Sub(e.winStart) < 2*time.Second {
			e.prev = e.count
		} else {
			e.prev = 0
		}
		e.count, e.winStart = 0, now
	}
	e.count++
	e.lastUse = now
	hot := lr.cfg.Threshold == 0 || max(e.count, e.prev) > lr.cfg.Threshold
	// Direct when cold, or when a recent refusal found nothing left in any lease; never while this
	// node holds a lease of the key (its chunk is counted in used: a direct consume would be
	// refused while the lease still has units).
	direct := e.lease == nil && (!hot || now.Before(e.exhaustedUntil))
	e.mu.Unlock()
	if direct {
		lr.stats.Direct.Add(1)
		return lr.svc.Consume(ctx, tenantID, dimension, amount, idempotencyKey)
	}
	return lr.consumeLeased(ctx, e, d, tenantID, amount, idempotencyKey)
}

func (lr *Leaser) consumeLeased(ctx context.Context, e *leaseEntry, d Dimension, tenantID, amount int64, key string) (Result, error) {
	var waitUntil time.Time
	lost := 0
	for {
		e.mu.Lock()
		rec, err := lr.reserve(ctx, e, d, tenantID, amount, key)
		e.mu.Unlock()
		if err != nil {
			return Result{}, err
		}
		if rec != nil {
			var out leaseOutcome
			select {
			case out = <-rec.done:
			case <-ctx.Done():
				return Result{}, ctx.Err()
			case <-lr.ctx.Done():
				return Result{}, ErrLeaseUnavailable
			}
			switch {
			case out.lost:
				lr.stats.Retried.Add(1)
				if lost++; lost > 3 {
					return Result{}, ErrLeaseUnavailable
				}
				continue
			case out.replay:
				r, err := lr.svc.replay(ctx, d, tenantID, d.Key, amount, key)
				if errors.Is(err, pgx.ErrNoRows) {
					// A duplicate in the batch whose first copy was not recorded: try again.
					if lost++; lost > 3 {
						return Result{}, ErrLeaseUnavailable
					}
					continue
				}
				return r, err
			}
			return out.res, out.err
		}
		// No chunk fits in the allowance (burst aside). Other leases of the key may hold what is
		// missing: take back the expired ones, and wait for the live ones for a while.
		open, expires, err := lr.svc.openLeases(ctx, tenantID, d.Key, lr.cfg.Grace)
		if err != nil {
			return Result{}, err
		}
		if open > 0 {
			now := time.Now()
			if waitUntil.IsZero() {
				waitUntil = now.Add(lr.cfg.TTL + lr.cfg.Grace + 500*time.Millisecond)
				if until := expires.Add(lr.cfg.Grace + 200*time.Millisecond); until.Before(waitUntil) {
					waitUntil = until
				}
			}
			if now.Before(waitUntil) {
				select {
				case <-time.After(50 * time.Millisecond):
				case <-ctx.Done():
					return Result{}, ctx.Err()
				}
				continue
			}
		}
		e.mu.Lock()
		if e.lease != nil {
			// Another consume took a chunk meanwhile (units came back): use it.
			e.mu.Unlock()
			continue
		}
		if open == 0 {
			e.exhaustedUntil = time.Now().Add(200 * time.Millisecond)
		}
		e.mu.Unlock()
		// The exact answer: granted within the burst allowance, or refused and recorded.
		lr.stats.Direct.Add(1)
		return lr.svc.Consume(ctx, tenantID, d.Key, amount, key)
	}
}

// reserve takes amount from the key's lease, acquiring a new chunk when the lease cannot cover
// it, and queues the record. It returns nil (and no error) when no chunk fits. e.mu is held.
func (lr *Leaser) reserve(ctx context.Context, e *leaseEntry, d Dimension, tenantID, amount int64, key string) (*leaseRecord, error) {
	if rec := lr.take(e, amount, key); rec != nil {
		return rec, nil
	}
	if lr.closed.Load() {
		return nil, nil // closing: no new leases; the caller asks Service.Consume
	}
	for attempt := 0; attempt < 2; attempt++ {
		nl, err := lr.acquire(ctx, d, tenantID, amount)
		if err != nil {
			return nil, err
		}
		if nl != nil {
			if old := e.lease; old != nil {
				lr.retire(old)
			}
			e.lease = nl
			return lr.take(e, amount, key), nil
		}
		// Nothing fits: give this node's own remainder back first, then try once more.
		old := e.lease
		if old == nil {
			return nil, nil
		}
		e.lease = nil
		if !lr.drained(old) {
			return nil, ErrLeaseUnavailable
		}
		if _, err := lr.svc.returnLease(ctx, old.id, false, 0); err != nil {
			lr.cfg.Log.Warn("quota lease: return failed; the reconciler will take it back", "lease", old.id, "err", err)
		}
		lr.stats.Returned.Add(1)
	}
	return nil, nil
}

// take reserves amount from the current lease and queues its record, or returns nil.
func (lr *Leaser) take(e *leaseEntry, amount int64, key string) *leaseRecord {
	l := e.lease
	if l == nil {
		return nil
	}
	now := time.Now()
	l.mu.Lock()
	if !l.usable(now) || l.granted-l.taken < amount {
		l.mu.Unlock()
		if !l.usable(now) {
			e.lease = nil
			lr.retire(l)
		}
		return nil
	}
	l.taken += amount
	used := l.base + l.taken
	empty := l.taken == l.granted
	l.inflight.Add(1)
	l.mu.Unlock()
	if empty {
		e.lease = nil
		lr.retire(l)
	}
	rec := &leaseRecord{l: l, key: key, amount: amount, used: used, done: make(chan leaseOutcome, 1)}
	lr.queue <- rec
	return rec
}

// retire returns l in the background once its records are committed. l is no longer current.
func (lr *Leaser) retire(l *lease) {
	lr.retiring.Add(1)
	go func() {
		defer lr.retiring.Done()
		if !lr.drained(l) {
			return
		}
		for try := 0; ; try++ {
			if lr.ctx.Err() != nil {
				return // crashed: the reconciler's job now
			}
			_, err := lr.svc.returnLease(lr.ctx, l.id, false, 0)
			if err == nil {
				lr.stats.Returned.Add(1)
				return
			}
			if try == 2 {
				lr.cfg.Log.Warn("quota lease: return failed; the reconciler will take it back", "lease", l.id, "err", err)
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
	}()
}

// drained waits until l's records are committed; false if the Leaser stopped first.
func (lr *Leaser) drained(l *lease) bool {
	done := make(chan struct{})
	go func() { l.inflight.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-lr.ctx.Done():
		return false
	}
}

// leaseAcquireSQL moves a chunk of the allowance into a new lease, in one statement:
//   - p fixes the clock ($6, or now()), the period start and extra (the active grants), as
//     consumeSQL does;
//   - cur locks the counter row (FOR UPDATE, so it reads the latest committed values) and sizes
//     the chunk: n = max(amount, min(max chunk, (allowance - used) / 4)), where the allowance is
//     consumeSQL's without the burst part (hard_limit + extra): leases never spend burst
//     allowance, consumes beyond it go through consumeSQL;
//   - upd adds n to used (resetting it first when a new period has begun) only if it fits;
//   - ins records the lease.
//
// $3 is the date_trunc field of the reset period or NULL, $4 the amount asked, $5 the largest
// chunk, $7 the node, $8 the lease's life in milliseconds.
const leaseAcquireSQL = `
WITH c AS (
    SELECT COALESCE($6::timestamptz, now()) AS now
), p AS (
    SELECT c.now,
           CASE WHEN $3::text IS NULL THEN '-infinity'::timestamptz ELSE date_trunc($3::text, c.now, 'UTC') END AS start,
           (SELECT COALESCE(sum(g.amount), 0) FROM tenantry.quota_grants g
             WHERE g.tenant_id = $1 AND g.dimension = $2 AND g.revoked_at IS NULL
               AND g.ends_at > c.now AND g.starts_at <= c.now)::bigint AS extra
      FROM c
), cur AS (
    SELECT q.soft_limit, q.hard_limit,
           CASE WHEN q.period_start < p.start THEN 0 ELSE q.used END AS used,
           GREATEST(q.period_start, p.start) AS period_start,
           q.hard_limit + p.extra AS allowance
      FROM tenantry.quota_limits q, p
     WHERE q.tenant_id = $1 AND q.dimension = $2
       FOR UPDATE OF q
), n AS (
    SELECT cur.*, GREATEST($4::bigint, LEAST($5::bigint, (cur.allowance - cur.used) / 4)) AS n FROM cur
), upd AS (
    UPDATE tenantry.quota_limits q
       SET used = n.used + n.n, period_start = n.period_start
      FROM n
     WHERE q.tenant_id = $1 AND q.dimension = $2 AND n.used + n.n <= n.allowance
    RETURNING n.n
), ins AS (
    INSERT INTO tenantry.quota_leases (tenant_id, dimension, node_id, period_start, period_end, granted, expires_at)
    SELECT $1, $2, $7, n.period_start,
           CASE WHEN $3::text IS NULL THEN 'infinity'::timestamptz
                ELSE (n.period_start AT TIME ZONE 'UTC' + ('1 ' || $3::text)::interval) AT TIME ZONE 'UTC' END,
           upd.n, now() + $8::bigint * interval '1 millisecond'
      FROM upd, n
    RETURNING id, granted
)
SELECT n.used, n.soft_limit, n.hard_limit, n.allowance, n.period_start, ins.id, ins.granted FROM n LEFT JOIN ins ON true`

// acquire takes a chunk of at least amount, or returns nil when none fits.
func (lr *Leaser) acquire(ctx context.Context, d Dimension, tenantID, amount int64) (*lease, error) {
	var unit *string
	if u := d.truncUnit(); u != "" {
		unit = &u
	}
	for attempt := 0; ; attempt++ {
		t0 := time.Now()
		var (
			used, soft, hard, allowance int64
			start                       pgtime
			id, granted                 *int64
		)
		err := lr.pool.QueryRow(ctx, leaseAcquireSQL, tenantID, d.Key, unit, amount, lr.cfg.MaxChunk, lr.svc.sqlNow(),
			lr.cfg.NodeID, lr.cfg.TTL.Milliseconds()).Scan(&used, &soft, &hard, &allowance, &start, &id, &granted)
		switch {
		case errors.Is(err, pgx.ErrNoRows) && attempt == 0:
			if err := ensureRow(ctx, lr.pool, tenantID, d.Key); err != nil {
				return nil, err
			}
			continue
		case errors.Is(err, pgx.ErrNoRows):
			return nil, ErrTenantNotFound
		case err != nil:
			return nil, fmt.Errorf("quota: acquire lease: %w", err)
		}
		if id == nil {
			return nil, nil
		}
		lr.stats.Acquired.Add(1)
		margin := min(500*time.Millisecond, lr.cfg.TTL/4)
		return &lease{id: *id, d: d, tenant: tenantID, granted: *granted, base: used, soft: soft, hard: hard, allowance: allowance, start: start,
			usableUntil: t0.Add(lr.cfg.TTL - margin), periodEnd: d.ResetAfter(start.Time)}, nil
	}
}

// leaseFlushSQL commits a batch of records in one statement: it locks the batch's leases that are
// still open and in their period (in id order, so concurrent flushes cannot deadlock), records the
// consumes of those leases under their idempotency keys (keys seen before are left alone),
// appends their usage events and adds what was recorded to each lease's consumed. Keys are
// inserted in (tenant, key) order, so two flushes that both carry the same keys (a client
// retrying several at once) wait for each other instead of deadlocking. It answers with
// the leases it locked ('l', id) and the records it inserted ('i', position in the batch).
const leaseFlushSQL = `
WITH r AS (
    SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::bigint[], $6::bigint[], $7::bigint[], $8::bigint[], $9::int[])
        AS r (lease_id, tenant_id, idempotency_key, dimension, amount, used_after, soft_limit, hard_limit, pos)
), locked AS (
    SELECT l.id, l.period_start FROM tenantry.quota_leases l
     WHERE l.id = ANY ($1::bigint[]) AND l.returned_at IS NULL AND now() < l.period_end
     ORDER BY l.id
       FOR UPDATE
), ins AS (
    INSERT INTO tenantry.quota_consumptions
           (tenant_id, idempotency_key, dimension, amount, allowed, used_after, soft_limit, hard_limit, period_start)
    SELECT r.tenant_id, r.idempotency_key, r.dimension, r.amount, true, r.used_after, r.soft_limit, r.hard_limit, locked.period_start
      FROM r JOIN locked ON locked.id = r.lease_id
     ORDER BY r.tenant_id, r.idempotency_key
    ON CONFLICT (tenant_id, idempotency_key) DO NOTHING
    RETURNING tenant_id, idempotency_key
), done AS (
    SELECT r.* FROM r JOIN ins USING (tenant_id, idempotency_key)
), ev AS (
    INSERT INTO tenantry.usage_events (tenant_id, dimension, value, occurred_at)
    SELECT tenant_id, dimension, amount, now() FROM done
), upd AS (
    UPDATE tenantry.quota_leases l SET consumed = l.consumed + s.total
      FROM (SELECT lease_id, sum(amount) AS total FROM done GROUP BY lease_id) s
     WHERE l.id = s.lease_id
)
SELECT 'l', id FROM locked
UNION ALL
SELECT 'i', pos FROM done`

func (lr *Leaser) flusher() {
	defer lr.wg.Done()
	batch := make([]*leaseRecord, 0, lr.cfg.MaxBatch)
	for {
		select {
		case rec := <-lr.queue:
			batch = append(batch[:0], rec)
		case <-lr.ctx.Done():
			return
		}
	more:
		for len(batch) < lr.cfg.MaxBatch {
			select {
			case rec := <-lr.queue:
				batch = append(batch, rec)
			default:
				break more
			}
		}
		lr.flush(batch)
	}
}

// flush commits a batch and answers each record.
func (lr *Leaser) flush(batch []*leaseRecord) {
	type tk struct {
		tenant int64
		key    string
	}
	first := make(map[tk]int, len(batch))
	var (
		leaseIDs, tenants, amounts, useds, softs, hards []int64
		keys, dims                                      []string
		pos                                             []int32
		dup                                             = make([]bool, len(batch))
	)
	for i, rec := range batch {
		k := tk{rec.l.tenant, rec.key}
		if _, seen := first[k]; seen {
			dup[i] = true // answered by replay once the first copy is recorded
			continue
		}
		first[k] = i
		leaseIDs = append(leaseIDs, rec.l.id)
		tenants = append(tenants, rec.l.tenant)
		keys = append(keys, rec.key)
		dims = append(dims, rec.l.d.Key)
		amounts = append(amounts, rec.amount)
		useds = append(useds, rec.used)
		softs = append(softs, rec.l.soft)
		hards = append(hards, rec.l.hard)
		pos = append(pos, int32(i))
	}
	locked := map[int64]bool{}
	inserted := make([]bool, len(batch))
	t0 := time.Now()
	rows, err := lr.pool.Query(lr.ctx, leaseFlushSQL, leaseIDs, tenants, keys, dims, amounts, useds, softs, hards, pos)
	if err == nil {
		for rows.Next() {
			var kind string
			var v int64
			if err = rows.Scan(&kind, &v); err != nil {
				break
			}
			if kind == "l" {
				locked[v] = true
			} else {
				inserted[v] = true
			}
		}
		rows.Close()
		if err == nil {
			err = rows.Err()
		}
	}
	lr.stats.FlushTime.Add(int64(time.Since(t0)))
	lr.stats.Flushes.Add(1)
	lr.stats.Records.Add(int64(len(batch)))
	for i, rec := range batch {
		l := rec.l
		var out leaseOutcome
		switch {
		case err != nil:
			// Unknown whether it committed: keep the amount reserved (the return counts what the
			// database recorded), and let the caller retry with the same key.
			out.err = fmt.Errorf("%w: %v", ErrLeaseUnavailable, err)
		case !locked[l.id]:
			l.mu.Lock()
			l.lost = true
			l.mu.Unlock()
			out.lost = true
		case inserted[i]:
			out.res = result(l.d, true, rec.used, l.soft, l.hard, l.start.Time)
			out.res.Remaining = max(0, l.allowance-rec.used)
		default:
			// The key was recorded before (or earlier in this batch): the amount goes back to the lease.
			l.mu.Lock()
			l.taken -= rec.amount
			l.mu.Unlock()
			out.replay = true
		}
		_ = dup[i]
		rec.done <- out
		l.inflight.Done()
	}
}

// sweeper returns leases that expired, whose key went quiet, and forgets quiet keys.
func (lr *Leaser) sweeper() {
	defer lr.wg.Done()
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case <-lr.ctx.Done():
			return
		case <-t.C:
		}
		now := time.Now()
		for k, e := range lr.entries() {
			if !e.mu.TryLock() {
				continue // busy, so not quiet
			}
			if l := e.lease; l != nil {
				l.mu.Lock()
				stale := !l.usable(now) || now.Sub(e.lastUse) > time.Second
				l.mu.Unlock()
				if stale {
					e.lease = nil
					lr.retire(l)
				}
			} else if now.Sub(e.lastUse) > time.Minute {
				e.dead = true
				lr.mu.Lock()
				delete(lr.keys, k)
				lr.mu.Unlock()
			}
			e.mu.Unlock()
		}
	}
}

// entries is a snapshot of the keys. (Lock order: an entry's mu, then lr.mu; never the reverse.)
func (lr *Leaser) entries() map[leaseKey]*leaseEntry {
	lr.mu.Lock()
	defer lr.mu.Unlock()
	out := make(map[leaseKey]*leaseEntry, len(lr.keys))
	for k, e := range lr.keys {
		out[k] = e
	}
	return out
}

// Close stops taking leases, waits for the records in flight and returns every lease. Consumes
// arriving meanwhile go through Service.Consume.
func (lr *Leaser) Close(ctx context.Context) error {
	if lr.closed.Swap(true) {
		return nil
	}
	for _, e := range lr.entries() {
		e.mu.Lock()
		if l := e.lease; l != nil {
			e.lease = nil
			lr.retire(l)
		}
		e.mu.Unlock()
	}
	done := make(chan struct{})
	go func() { lr.retiring.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = fmt.Errorf("quota: return leases: %w", ctx.Err())
	}
	lr.cancel()
	lr.wg.Wait()
	return err
}

// returnLeaseSQL closes a lease: it takes the lease row's lock (waiting for a flush in progress)
// and stamps returned_at, only if still open and, for the reconciler ($2), only once past
// expires_at + $3 ms.
const returnLeaseSQL = `
UPDATE tenantry.quota_leases SET returned_at = now(), reconciled = $2
 WHERE id = $1 AND returned_at IS NULL
   AND (NOT $2 OR expires_at < now() - $3::bigint * interval '1 millisecond')
RETURNING tenant_id, dimension, period_start, granted - consumed`

// returnLease gives a lease's unspent part back to the counter, when the counter is still in the
// lease's period, in one transaction with closing it. ok is false when it was closed already (or,
// reconciling, not yet past its grace).
func (s *Service) returnLease(ctx context.Context, id int64, reconcile bool, grace time.Duration) (refunded int64, err error) {
	err = pgx.BeginFunc(ctx, s.db.AppPool, func(tx pgx.Tx) error {
		var (
			tenant  int64
			dim     string
			start   pgtime
			unspent int64
		)
		err := tx.QueryRow(ctx, returnLeaseSQL, id, reconcile, grace.Milliseconds()).Scan(&tenant, &dim, &start, &unspent)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		if unspent > 0 {
			tag, err := tx.Exec(ctx, `UPDATE tenantry.quota_limits SET used = GREATEST(0, used - $3)
				WHERE tenant_id = $1 AND dimension = $2 AND period_start = $4`, tenant, dim, unspent, start)
			if err != nil {
				return err
			}
			if tag.RowsAffected() == 1 {
				refunded = unspent
			}
		}
		_, err = tx.Exec(ctx, "UPDATE tenantry.quota_leases SET refunded = $2 WHERE id = $1", id, refunded)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("quota: return lease %d: %w", id, err)
	}
	return refunded, nil
}

// ReconcileLeases takes back the leases past expires_at + grace that their node never returned
// (it crashed or lost the database), giving their unspent part back. It returns how many.
func (s *Service) ReconcileLeases(ctx context.Context, grace time.Duration) (int, error) {
	rows, err := s.db.AppPool.Query(ctx, `SELECT id FROM tenantry.quota_leases
		WHERE returned_at IS NULL AND expires_at < now() - $1::bigint * interval '1 millisecond' ORDER BY id LIMIT 10000`, grace.Milliseconds())
	if err != nil {
		return 0, fmt.Errorf("quota: reconcile leases: %w", err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[int64])
	if err != nil {
		return 0, fmt.Errorf("quota: reconcile leases: %w", err)
	}
	for _, id := range ids {
		if _, err := s.returnLease(ctx, id, true, grace); err != nil {
			return 0, err
		}
	}
	return len(ids), nil
}

// openLeases reconciles the key's leases past expires_at + grace, then tells how much the open
// ones still hold unspent, and when the last of them expires.
func (s *Service) openLeases(ctx context.Context, tenantID int64, dimension string, grace time.Duration) (unspent int64, expires time.Time, err error) {
	rows, err := s.db.AppPool.Query(ctx, `SELECT id, granted - consumed, expires_at, expires_at < now() - $3::bigint * interval '1 millisecond'
		FROM tenantry.quota_leases WHERE tenant_id = $1 AND dimension = $2 AND returned_at IS NULL`, tenantID, dimension, grace.Milliseconds())
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("quota: open leases: %w", err)
	}
	type open struct {
		id, unspent int64
		expires     time.Time
		past        bool
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (open, error) {
		var o open
		err := r.Scan(&o.id, &o.unspent, &o.expires, &o.past)
		return o, err
	})
	if err != nil {
		return 0, time.Time{}, fmt.Errorf("quota: open leases: %w", err)
	}
	for _, o := range got {
		if o.past {
			if _, err := s.returnLease(ctx, o.id, true, grace); err != nil {
				return 0, time.Time{}, err
			}
			continue
		}
		if o.unspent > 0 {
			unspent += o.unspent
			if o.expires.After(expires) {
				expires = o.expires
			}
		}
	}
	return unspent, expires, nil
}
