package quota

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/tenant"
)

// consumeSQLBefore is consumeSQL as it was before grants and burst (commit 24a1654), kept here
// only to measure what they cost.
const consumeSQLBefore = `
WITH p AS (
    SELECT CASE WHEN $5::text IS NULL THEN '-infinity'::timestamptz ELSE date_trunc($5::text, now(), 'UTC') END AS start
), cur AS (
    SELECT q.soft_limit, q.hard_limit,
           CASE WHEN q.period_start < p.start THEN 0 ELSE q.used END AS used,
           GREATEST(q.period_start, p.start) AS period_start
      FROM tenantry.quota_limits q, p
     WHERE q.tenant_id = $1 AND q.dimension = $2
), upd AS (
    UPDATE tenantry.quota_limits q
       SET used = CASE WHEN q.period_start < p.start THEN 0 ELSE q.used END + $4,
           period_start = GREATEST(q.period_start, p.start)
      FROM p
     WHERE q.tenant_id = $1 AND q.dimension = $2
       AND CASE WHEN q.period_start < p.start THEN 0 ELSE q.used END + $4 <= q.hard_limit
    RETURNING q.used, q.soft_limit, q.hard_limit, q.period_start
), res AS (
    SELECT upd.used IS NOT NULL AS allowed,
           COALESCE(upd.used, cur.used) AS used,
           COALESCE(upd.soft_limit, cur.soft_limit) AS soft_limit,
           COALESCE(upd.hard_limit, cur.hard_limit) AS hard_limit,
           COALESCE(upd.period_start, cur.period_start) AS period_start
      FROM cur LEFT JOIN upd ON true
), ins AS (
    INSERT INTO tenantry.quota_consumptions
           (tenant_id, idempotency_key, dimension, amount, allowed, used_after, soft_limit, hard_limit, period_start)
    SELECT $1, $3, $2, $4, res.allowed, res.used, res.soft_limit, res.hard_limit, res.period_start FROM res
), ev AS (
    INSERT INTO tenantry.usage_events (tenant_id, dimension, value, occurred_at)
    SELECT $1, $2, $4, now() FROM upd
)
SELECT allowed, used, soft_limit, hard_limit, period_start FROM res`

// BenchmarkConsumeStatement measures the cost of the consume statement alone, one caller on one
// connection with synchronous_commit off (so the commit's fsync, which dominates BenchmarkConsume
// and is the same for all, does not hide the difference): the statement before grants and burst
// (commit 24a1654), and the current one without grants, with 3 active and 20 ended grants, and
// with burst capacity on. Each call consumes 1 of a limit too large to reach.
func BenchmarkConsumeStatement(b *testing.B) {
	d := dbtest.Open(b)
	svc := NewService(d)
	ctx := context.Background()
	newTenant := func() int64 {
		r := make([]byte, 4)
		_, _ = rand.Read(r)
		tn, err := tenant.NewService(d, dbtest.Logger(b)).Create(ctx, "bench", tenant.NewTenant{Slug: "qs-" + hex.EncodeToString(r), Name: "Bench", PlanKey: "enterprise"})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := svc.SetLimit(ctx, "bench", tn.ID, "api_requests", 1<<40, 1<<41); err != nil {
			b.Fatal(err)
		}
		if err := ensureRow(ctx, d.AppPool, tn.ID, "api_requests"); err != nil {
			b.Fatal(err)
		}
		return tn.ID
	}
	before, plain, granted, burst := newTenant(), newTenant(), newTenant(), newTenant()
	now := time.Now()
	for i := range 23 {
		start, end := now.Add(-time.Hour), now.Add(time.Hour)
		if i >= 3 {
			start, end = now.Add(-time.Duration(i+2)*time.Hour), now.Add(-time.Duration(i+1)*time.Hour)
		}
		if _, err := d.AppPool.Exec(ctx, `INSERT INTO tenantry.quota_grants (tenant_id, dimension, amount, starts_at, ends_at, reason, created_by)
			VALUES ($1, 'api_requests', 100, $2, $3, 'bench', 'bench')`, granted, start, end); err != nil {
			b.Fatal(err)
		}
	}
	pct := 20
	if _, err := svc.Change(ctx, "bench", burst, "api_requests", LimitChange{Soft: 1 << 40, Hard: 1 << 41, BurstPercent: &pct}); err != nil {
		b.Fatal(err)
	}
	conn, err := d.AppPool.Acquire(ctx)
	if err != nil {
		b.Fatal(err)
	}
	defer conn.Release()
	if _, err := conn.Exec(ctx, "SET synchronous_commit = off"); err != nil {
		b.Fatal(err)
	}
	defer conn.Exec(ctx, "RESET synchronous_commit") //nolint:errcheck
	unit := "day"
	run, seq := time.Now().UnixNano(), 0
	cases := []struct {
		name   string
		sql    string
		tenant int64
		args   int
		spent  time.Duration
	}{
		{"before-us", consumeSQLBefore, before, 5, 0},
		{"now-no-grants-us", consumeSQL, plain, 6, 0},
		{"now-3-active-20-ended-grants-us", consumeSQL, granted, 6, 0},
		{"now-burst-on-us", consumeSQL, burst, 6, 0},
	}
	// Round robin, one statement of each case per iteration, each on its own limit row, so that
	// the machine's load and the tables' growth weigh on every case alike.
	b.ResetTimer()
	for range b.N {
		for i := range cases {
			tc := &cases[i]
			seq++
			args := []any{tc.tenant, "api_requests", fmt.Sprintf("s%d-%d", run, seq), int64(1), &unit}
			if tc.args == 6 {
				args = append(args, nil)
			}
			t0 := time.Now()
			rows, err := conn.Query(ctx, tc.sql, args...)
			if err != nil {
				b.Fatal(err)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				b.Fatal(err)
			}
			tc.spent += time.Since(t0)
		}
	}
	for _, tc := range cases {
		b.ReportMetric(float64(tc.spent.Microseconds())/float64(b.N), tc.name)
	}
}
