// Package isolation owns the isolation verifier: it samples pairs of tenants and, for each pair,
// tries every access path from one tenant into the other — the ORM with the wrong tenant, raw SQL
// under the tenant's role against the other's schema, control-plane rows under row-level
// security, and (through probes the web layer registers) HTTP with one tenant's credentials — and
// expects each attempt to be refused. Every probe's outcome is kept; any breach is audited.
package isolation

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"gorm.io/gorm"
	"gorm.io/gorm/logger"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/tenantscope"
)

// ErrBreach is returned by Run when any probe crossed a tenant boundary.
var ErrBreach = errors.New("isolation: a probe crossed a tenant boundary")

// Probe tries one access path from tenant A into tenant B. It returns nil when the attempt was
// refused (isolation held), or an error describing what got through.
type Probe struct {
	Name string
	Try  func(ctx context.Context, a, b int64) error
}

// RunRecord is one verifier run.
type RunRecord struct {
	ID         int64
	Trigger    string
	StartedAt  time.Time
	FinishedAt *time.Time
	Pairs      int
	Probes     int
	Failures   int
	Error      *string
}

// TableName places runs in the control plane.
func (RunRecord) TableName() string { return "tenantry.isolation_runs" }

// ProbeResult is the outcome of one probe on one pair.
type ProbeResult struct {
	ID         int64
	RunID      int64
	TenantA    int64
	TenantB    int64
	Probe      string
	Passed     bool
	Detail     string
	DurationUs int64
}

// TableName places results in the control plane.
func (ProbeResult) TableName() string { return "tenantry.isolation_probes" }

// Verifier runs the probes.
type Verifier struct {
	db     *db.DB
	log    *slog.Logger
	probes []Probe
	// Pairs is how many tenant pairs a run samples.
	Pairs int
}

// New returns a verifier with the database probes; the web layer adds its HTTP probes with Add.
func New(d *db.DB, log *slog.Logger) *Verifier {
	v := &Verifier{db: d, log: log, Pairs: 5}
	v.probes = []Probe{
		{"orm: tenant A's context names B's schema", v.ormOtherSchema},
		{"orm: tenant model without a tenant", v.ormNoTenant},
		{"sql: read B's schema under A's role", v.sqlRead},
		{"sql: write B's schema under A's role", v.sqlWrite},
		{"sql: A's role drops into B's role's privileges", v.sqlAppRoleInherits},
		{"rls: B's control-plane rows in A's context", v.rlsOtherTenant},
		{"rls: A's role with B's tenant setting", v.rlsForgedSetting},
	}
	return v
}

// Add registers more probes (the HTTP ones).
func (v *Verifier) Add(p ...Probe) { v.probes = append(v.probes, p...) }

// Run samples pairs of tenants that have their own plane, runs every probe on each pair, stores
// the results and returns the run. It returns ErrBreach (with the run) when any probe failed.
func (v *Verifier) Run(ctx context.Context, trigger string) (RunRecord, error) {
	app := v.db.App.WithContext(ctx)
	run := RunRecord{Trigger: trigger, StartedAt: time.Now().UTC()}
	if err := app.Create(&run).Error; err != nil {
		return run, err
	}
	pairs, err := v.samplePairs(ctx)
	if err != nil {
		return v.finish(ctx, run, err)
	}
	run.Pairs = len(pairs)
	var failed []string
	for _, p := range pairs {
		for _, probe := range v.probes {
			start := time.Now()
			perr := probe.Try(ctx, p[0], p[1])
			res := ProbeResult{RunID: run.ID, TenantA: p[0], TenantB: p[1], Probe: probe.Name, Passed: perr == nil,
				DurationUs: time.Since(start).Microseconds()}
			if perr != nil {
				res.Detail = perr.Error()
				failed = append(failed, fmt.Sprintf("%s (tenant %d → %d): %v", probe.Name, p[0], p[1], perr))
				run.Failures++
			}
			run.Probes++
			if err := app.Create(&res).Error; err != nil {
				return v.finish(ctx, run, err)
			}
		}
	}
	run, err = v.finish(ctx, run, nil)
	if err != nil {
		return run, err
	}
	if len(failed) > 0 {
		v.log.Error("isolation breach", "run", run.ID, "failures", run.Failures, "first", failed[0])
		aerr := app.Transaction(func(tx *gorm.DB) error {
			return audit.Record(tx, audit.Event{Actor: "system:isolation-verifier", Action: "isolation.breach",
				Target: "run " + strconv.FormatInt(run.ID, 10), Detail: audit.Detail(map[string]any{"failures": failed})})
		})
		return run, errors.Join(fmt.Errorf("%w: %d of %d probes failed; first: %s", ErrBreach, run.Failures, run.Probes, failed[0]), aerr)
	}
	return run, nil
}

func (v *Verifier) finish(ctx context.Context, run RunRecord, runErr error) (RunRecord, error) {
	now := time.Now().UTC()
	run.FinishedAt = &now
	if runErr != nil {
		msg := runErr.Error()
		run.Error = &msg
	}
	if err := v.db.App.WithContext(ctx).Save(&run).Error; err != nil {
		return run, errors.Join(runErr, err)
	}
	return run, runErr
}

// samplePairs picks up to Pairs ordered pairs (A, B) of distinct tenants that have a schema.
func (v *Verifier) samplePairs(ctx context.Context) ([][2]int64, error) {
	var ids []int64
	err := v.db.App.WithContext(ctx).Raw(`SELECT t.id FROM tenantry.tenants t
		WHERE t.state NOT IN ('provisioning', 'purged')
		  AND EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = 't_' || t.id)
		ORDER BY random() LIMIT ?`, v.Pairs*2).Scan(&ids).Error
	if err != nil {
		return nil, err
	}
	if len(ids) < 2 {
		return nil, nil
	}
	var pairs [][2]int64
	for i := 0; i+1 < len(ids) && len(pairs) < v.Pairs; i += 2 {
		pairs = append(pairs, [2]int64{ids[i], ids[i+1]})
	}
	return pairs, nil
}

// denied reports whether err is PostgreSQL refusing the privilege.
func denied(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == "42501"
}

// probeUser is a tenant-plane model used only by the probes.
type probeUser struct {
	ID    int64
	Email string
}

func (probeUser) TableName() string { return "users" }
func (probeUser) TenantSchema()     {}

// errRollback ends a probe's transaction without committing anything it did.
var errRollback = errors.New("probe done")

// quiet keeps the refusals the probes expect out of the SQL error log.
func quiet(tx *gorm.DB) *gorm.DB {
	return tx.Session(&gorm.Session{Logger: tx.Logger.LogMode(logger.Silent)})
}

// inTenant runs fn in A's context and always rolls back.
func (v *Verifier) inTenant(ctx context.Context, a int64, fn func(tx *gorm.DB) error) error {
	var result error
	err := v.db.InTenant(ctx, a, func(tx *gorm.DB) error {
		result = fn(quiet(tx))
		return errRollback
	})
	if err != nil && !errors.Is(err, errRollback) {
		return err
	}
	return result
}

func (v *Verifier) ormOtherSchema(ctx context.Context, a, b int64) error {
	return v.inTenant(ctx, a, func(tx *gorm.DB) error {
		var us []probeUser
		err := tx.Table(db.TenantSchema(b) + ".users").Find(&us).Error
		if errors.Is(err, tenantscope.ErrCrossTenant) {
			return nil
		}
		return fmt.Errorf("expected ErrCrossTenant, got %v (%d rows)", err, len(us))
	})
}

func (v *Verifier) ormNoTenant(ctx context.Context, _, _ int64) error {
	var us []probeUser
	err := quiet(v.db.App.WithContext(ctx)).Find(&us).Error
	if errors.Is(err, tenantscope.ErrNoTenant) {
		return nil
	}
	return fmt.Errorf("expected ErrNoTenant, got %v (%d rows)", err, len(us))
}

func (v *Verifier) sqlRead(ctx context.Context, a, b int64) error {
	return v.inTenant(ctx, a, func(tx *gorm.DB) error {
		var n int64
		err := tx.WithContext(tenantscope.AllowRaw(tx.Statement.Context)).Raw("SELECT count(*) FROM " + db.TenantSchema(b) + ".users").Scan(&n).Error
		if denied(err) {
			return nil
		}
		return fmt.Errorf("expected permission denied, got %v (count %d)", err, n)
	})
}

func (v *Verifier) sqlWrite(ctx context.Context, a, b int64) error {
	return v.inTenant(ctx, a, func(tx *gorm.DB) error {
		err := tx.WithContext(tenantscope.AllowRaw(tx.Statement.Context)).
			Exec("INSERT INTO " + db.TenantSchema(b) + ".audit_events (actor, action, prev_hash, hash) VALUES ('verifier', 'probe', '', gen_random_uuid()::text::bytea)").Error
		if denied(err) {
			return nil
		}
		return fmt.Errorf("expected permission denied, got %v", err)
	})
}

// sqlAppRoleInherits checks that the app role, outside any tenant role, reaches no tenant schema.
func (v *Verifier) sqlAppRoleInherits(ctx context.Context, _, b int64) error {
	var n int64
	err := quiet(v.db.App.WithContext(tenantscope.AllowRaw(ctx))).Raw("SELECT count(*) FROM " + db.TenantSchema(b) + ".users").Scan(&n).Error
	if denied(err) {
		return nil
	}
	return fmt.Errorf("expected permission denied for the app role, got %v (count %d)", err, n)
}

func (v *Verifier) rlsOtherTenant(ctx context.Context, a, b int64) error {
	return v.inTenant(ctx, a, func(tx *gorm.DB) error {
		var n int64
		err := tx.WithContext(tenantscope.AllowRaw(tx.Statement.Context)).
			Raw("SELECT count(*) FROM tenantry.audit_events WHERE tenant_id = ?", b).Scan(&n).Error
		if err != nil {
			return fmt.Errorf("query failed: %v", err)
		}
		if n != 0 {
			return fmt.Errorf("saw %d of tenant %d's control-plane rows", n, b)
		}
		return nil
	})
}

func (v *Verifier) rlsForgedSetting(ctx context.Context, a, b int64) error {
	return v.inTenant(ctx, a, func(tx *gorm.DB) error {
		raw := tx.WithContext(tenantscope.AllowRaw(tx.Statement.Context))
		if err := raw.Exec("SELECT set_config('app.tenant_id', ?, true)", strconv.FormatInt(b, 10)).Error; err != nil {
			return err
		}
		var n int64
		if err := raw.Raw("SELECT count(*) FROM tenantry.audit_events").Scan(&n).Error; err != nil {
			return fmt.Errorf("query failed: %v", err)
		}
		if n != 0 {
			return fmt.Errorf("with app.tenant_id forged to %d, saw %d rows", b, n)
		}
		return nil
	})
}

// Latest returns the most recent runs, newest first.
func Latest(ctx context.Context, gdb *gorm.DB, limit int) ([]RunRecord, error) {
	var runs []RunRecord
	err := gdb.WithContext(ctx).Order("id DESC").Limit(limit).Find(&runs).Error
	return runs, err
}

// Results returns a run's probe results, failures first.
func Results(ctx context.Context, gdb *gorm.DB, runID int64) ([]ProbeResult, error) {
	var rs []ProbeResult
	err := gdb.WithContext(ctx).Where("run_id = ?", runID).Order("passed, id").Find(&rs).Error
	return rs, err
}

// Summary words a run for people.
func (r RunRecord) Summary() string {
	switch {
	case r.Error != nil:
		return "Could not complete: " + *r.Error
	case r.Pairs == 0:
		return "Nothing to check: fewer than two tenants have their own schema."
	case r.Failures > 0:
		return fmt.Sprintf("BREACH: %d of %d probes crossed a tenant boundary.", r.Failures, r.Probes)
	default:
		return fmt.Sprintf("All %d probes on %d tenant pairs were refused.", r.Probes, r.Pairs)
	}
}
