package lifecycle

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/tenant"
)

// keptPlatformTables keep the tenant's rows after the purge: the platform audit trail, the
// evidence of destruction (keyset row without key material, lifecycle record, certificate), the
// outbox log of what was sent, provisioning history. Tables of billing records (names containing
// billing, invoice or payment) are kept too: accounting law outlives the tenant.
var keptPlatformTables = []string{"audit_events", "tenant_keysets", "key_rotations", "mail_outbox", "provisioning_runs",
	"tenant_lifecycles", "lifecycle_events", "lifecycle_messages", "lifecycle_exports", "legal_holds", "destruction_certificates"}

func keptTable(name string) bool {
	return slices.Contains(keptPlatformTables, name) || strings.Contains(name, "billing") ||
		strings.Contains(name, "invoice") || strings.Contains(name, "payment")
}

// suspend closes the tenant: it moves to suspended, so sign-in and API keys are refused (both
// check the state on every use; the key epoch moves so every node re-reads it at once), the role
// is made sure to be NOLOGIN, and the export is requested. Keys and sessions are revoked for good
// at the export (markExported), so a cancel before then gives everything back as it was.
func (s *Service) suspend(ctx context.Context, t tenant.Tenant, actor string) error {
	err := s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := s.Transition(tx, t.ID, Suspended, actor, "sign-in and API keys refused; export requested"); err != nil {
			return err
		}
		return tx.Exec("UPDATE tenantry.tenants SET api_key_epoch = api_key_epoch + 1 WHERE id = ?", t.ID).Error
	})
	if err != nil {
		return err
	}
	if _, err := s.d.OwnerPool.Exec(ctx, "ALTER ROLE "+pgx.Identifier{db.TenantSchema(t.ID)}.Sanitize()+" NOLOGIN"); err != nil && !isUndefinedRole(err) {
		return err
	}
	_, err = s.RequestExport(ctx, actor, t.ID)
	return err
}

// revokeAccess revokes every API key of the tenant and ends every user's sessions, recorded in
// the tenant's own audit trail.
func (s *Service) revokeAccess(ctx context.Context, t tenant.Tenant, actor string) (keysRevoked, usersSignedOut int64, err error) {
	err = s.d.InTenant(ctx, t.ID, func(tx *gorm.DB) error {
		now := s.Now()
		keysRes := tx.Table(db.TenantSchema(t.ID)+".api_keys").Where("revoked_at IS NULL").Update("revoked_at", now)
		if keysRes.Error != nil {
			return keysRes.Error
		}
		users := tx.Table(db.TenantSchema(t.ID)+".users").Where("true").Update("session_epoch", gorm.Expr("session_epoch + 1"))
		if users.Error != nil {
			return users.Error
		}
		keysRevoked, usersSignedOut = keysRes.RowsAffected, users.RowsAffected
		if err := audit.RecordTenant(tx, audit.TenantEvent{Actor: actor, Action: "tenant.access_revoked", Target: t.Slug,
			Detail: audit.Detail(map[string]any{"api_keys_revoked": keysRevoked, "users_signed_out": usersSignedOut})}); err != nil {
			return err
		}
		return db.AsPlatform(tx, func(ptx *gorm.DB) error {
			return ptx.Exec("UPDATE tenantry.tenants SET api_key_epoch = api_key_epoch + 1 WHERE id = ?", t.ID).Error
		})
	})
	if err != nil && missingPlane(err) {
		return 0, 0, nil
	}
	return keysRevoked, usersSignedOut, err
}

func isUndefinedRole(err error) bool {
	var pe interface{ SQLState() string }
	return errors.As(err, &pe) && pe.SQLState() == "42704"
}

// markExported moves a suspended tenant whose export is done to exported, starts its retention
// period, and reclaims what it held: API keys revoked, sessions ended, quotas released (limits,
// leases, grants and alerts: the export holds them).
func (s *Service) markExported(ctx context.Context, t tenant.Tenant, e Export, actor string) error {
	p, _, err := s.PlanOf(ctx, t.ID)
	if err != nil {
		return err
	}
	now := s.Now()
	purgeAfter := now.Add(time.Duration(p.Policy.RetentionDays) * 24 * time.Hour)
	released := map[string]int64{}
	err = s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if _, err := s.Transition(tx, t.ID, Exported, actor, fmt.Sprintf("export %d ready (%s)", e.ID, e.FileName)); err != nil {
			return err
		}
		return tx.Model(&Plan{}).Where("tenant_id = ?", t.ID).Updates(map[string]any{"exported_at": now, "purge_after": purgeAfter, "updated_at": time.Now().UTC()}).Error
	})
	if err != nil {
		return err
	}
	keysRevoked, signedOut, err := s.revokeAccess(ctx, t, actor)
	if err != nil {
		return err
	}
	names, err := s.platformTables(ctx, func(n string) bool { return strings.HasPrefix(n, "quota_") })
	if err != nil {
		return err
	}
	var tables []exportTable
	for _, n := range names {
		tables = append(tables, exportTable{schema: db.Schema, name: n, where: tenantWhere(t.ID)})
	}
	if released, err = s.deleteTenantRows(ctx, tables); err != nil {
		return err
	}
	return s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return audit.Record(tx, audit.Event{TenantID: &t.ID, Actor: actor, Action: "tenant.reclaimed", Target: t.Slug,
			Detail: audit.Detail(map[string]any{"quota_rows_released": released, "api_keys_revoked": keysRevoked,
				"users_signed_out": signedOut, "purge_after": purgeAfter})})
	})
}

// platformTables lists the control-plane tables with a tenant_id column that match keep.
func (s *Service) platformTables(ctx context.Context, keep func(string) bool) ([]string, error) {
	rows, err := s.d.OwnerPool.Query(ctx, `SELECT c.relname FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = $1 AND a.attname = 'tenant_id' AND NOT a.attisdropped AND c.relkind IN ('r', 'p')
		AND NOT c.relispartition ORDER BY c.relname`, db.Schema)
	if err != nil {
		return nil, err
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, err
	}
	return slices.DeleteFunc(names, func(n string) bool { return !keep(n) }), nil
}

// deleteTenantRows deletes the tenant's rows from tables (as the owner: some are append-only for
// the app), in as many passes as foreign keys between them need, and returns the counts.
func (s *Service) deleteTenantRows(ctx context.Context, tables []exportTable) (map[string]int64, error) {
	out := map[string]int64{}
	left := slices.Clone(tables)
	for pass := 0; len(left) > 0; pass++ {
		var failed []exportTable
		var lastErr error
		for _, et := range left {
			tag, err := s.d.OwnerPool.Exec(ctx, "DELETE FROM "+et.ident()+" t"+et.where)
			if err != nil {
				var pe interface{ SQLState() string }
				if errors.As(err, &pe) && pe.SQLState() == "23503" && pass < len(tables) { // referenced by a table not done yet
					failed, lastErr = append(failed, et), err
					continue
				}
				return out, fmt.Errorf("delete tenant rows from %s: %w", et.name, err)
			}
			out[et.name] += tag.RowsAffected()
		}
		if len(failed) == len(left) {
			return out, lastErr
		}
		left = failed
	}
	return out, nil
}

// platformDeletions are the control-plane tables the facts say to delete from, with their scope.
func (s *Service) platformDeletions(ctx context.Context, tenantID int64, f Facts) ([]exportTable, error) {
	tx, err := s.d.OwnerPool.BeginTx(ctx, pgx.TxOptions{AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	all, err := tablesOf(ctx, tx, tenantID)
	if err != nil {
		return nil, err
	}
	var out []exportTable
	for _, et := range all {
		if et.source != "platform" {
			continue
		}
		for _, tc := range f.PlatformRows {
			if tc.Name == et.name {
				out = append(out, et)
			}
		}
	}
	return out, nil
}

// Facts is what a purge destroys, captured before anything is dropped.
type Facts struct {
	Schema       string           `json:"schema"`
	Role         string           `json:"role"`
	Tables       []TableCount     `json:"tables"`
	PlatformRows []TableCount     `json:"platform_rows"`
	KeyIDs       []uint32         `json:"key_ids"`
	Exports      []ExportDeletion `json:"exports"`
	Retained     []TableCount     `json:"retained"`
}

// TableCount is a table with its row count.
type TableCount struct {
	Name string `json:"name"`
	Rows int64  `json:"rows"`
}

// ExportDeletion is an export archive the purge deletes.
type ExportDeletion struct {
	ID     int64  `json:"id"`
	File   string `json:"file"`
	SHA256 string `json:"sha256"`
}

// PurgeCheck says whether the tenant may be purged now, and if not, why.
func (s *Service) PurgeCheck(ctx context.Context, tenantID int64) error {
	t, err := s.tenantByID(ctx, tenantID)
	if err != nil {
		return err
	}
	if err := CheckTransition(t.State, Purged); err != nil {
		return err
	}
	if h, ok, err := s.LegalHoldOf(ctx, tenantID); err != nil {
		return err
	} else if ok {
		return fmt.Errorf("%w: set by %s on %s: %s", ErrLegalHold, h.SetBy, h.SetAt.Format(dateLayout), h.Reason)
	}
	p, ok, err := s.PlanOf(ctx, tenantID)
	if err != nil {
		return err
	}
	if !ok || p.PurgeAfter == nil {
		return ErrNotStarted
	}
	if s.Now().Before(*p.PurgeAfter) {
		return fmt.Errorf("%w: the %s policy keeps the data for %d days after the export, until %s",
			ErrRetention, policySource(Policy(p.Policy), "retention_days"), p.Policy.RetentionDays, p.PurgeAfter.Format(dateLayout))
	}
	return nil
}

func policySource(p Policy, key string) string {
	if src := p.Sources[key]; src != "" {
		return src
	}
	return "global"
}

// Purge destroys the tenant's data once its retention period has ended and no legal hold is set:
// the export archives, its rows of control-plane tables (except the audit trail and evidence),
// its schema and role, and its keyset (crypto-shredding anything encrypted elsewhere); then it
// issues the signed certificate of destruction and moves the tenant to purged. What is destroyed
// is captured first and kept, so a purge interrupted at any point is finished by calling Purge
// again, which deletes nothing twice and certifies the same facts.
func (s *Service) Purge(ctx context.Context, actor string, tenantID int64) (Certificate, error) {
	if err := s.PurgeCheck(ctx, tenantID); err != nil {
		return Certificate{}, err
	}
	sg, err := s.signingKey(ctx)
	if err != nil {
		return Certificate{}, err
	}
	t, err := s.tenantByID(ctx, tenantID)
	if err != nil {
		return Certificate{}, err
	}
	facts, err := s.captureFacts(ctx, t, actor)
	if err != nil {
		return Certificate{}, fmt.Errorf("record what the purge destroys: %w", err)
	}
	// 1. Export archives.
	for _, e := range facts.Exports {
		if err := os.Remove(s.ArchivePath(Export{FileName: e.File})); err != nil && !errors.Is(err, os.ErrNotExist) {
			return Certificate{}, err
		}
	}
	if err := s.d.App.WithContext(ctx).Model(&Export{}).Where("tenant_id = ? AND state <> 'deleted'", tenantID).
		Updates(map[string]any{"state": ExportDeleted, "deleted_at": s.Now()}).Error; err != nil {
		return Certificate{}, err
	}
	// 2. The tenant's rows of control-plane tables (those the facts list; children through
	// their parent row, so they go first or by cascade).
	del, err := s.platformDeletions(ctx, tenantID, facts)
	if err != nil {
		return Certificate{}, err
	}
	if _, err := s.deleteTenantRows(ctx, del); err != nil {
		return Certificate{}, err
	}
	// 3. Schema and role (the app role loses its membership with the role).
	if err := s.d.DropTenantPlane(ctx, tenantID); err != nil {
		return Certificate{}, err
	}
	// 4. The keyset.
	if s.keys != nil {
		if err := s.keys.Destroy(ctx, actor, tenantID); err != nil && !errors.Is(err, keys.ErrNoKeyset) {
			return Certificate{}, err
		}
	}
	// 5. The certificate, and the state.
	var cert Certificate
	err = s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var p Plan
		if err := tx.Where("tenant_id = ?", tenantID).Take(&p).Error; err != nil {
			return err
		}
		now := s.Now()
		var keyDestroyedAt *time.Time
		if s.keys != nil {
			if st, err := s.keys.Status(ctx, tenantID); err == nil {
				keyDestroyedAt = st.DestroyedAt
			}
		}
		c := buildCertificate(t, p, facts, now, keyDestroyedAt, s.keys != nil)
		doc, err := sg.sign(c)
		if err != nil {
			return err
		}
		if err := tx.Exec("INSERT INTO tenantry.destruction_certificates (tenant_id, cert_id, document, issued_at) VALUES (?, ?, ?, ?) ON CONFLICT (tenant_id) DO NOTHING",
			tenantID, c.ID, doc, now).Error; err != nil {
			return err
		}
		if _, err := s.Transition(tx, tenantID, Purged, actor, "certificate "+c.ID); err != nil {
			return err
		}
		if err := tx.Model(&Plan{}).Where("tenant_id = ?", tenantID).Updates(map[string]any{"purged_at": now, "updated_at": time.Now().UTC()}).Error; err != nil {
			return err
		}
		cert = c
		return audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "tenant.purged", Target: t.Slug,
			Detail: audit.Detail(map[string]any{"certificate": c.ID, "schema": facts.Schema, "tables": len(facts.Tables), "key_ids": facts.KeyIDs})})
	})
	return cert, err
}

// captureFacts records, once, what the purge will destroy; later calls return the stored facts.
func (s *Service) captureFacts(ctx context.Context, t tenant.Tenant, actor string) (Facts, error) {
	var p Plan
	if err := s.d.App.WithContext(ctx).Where("tenant_id = ?", t.ID).Take(&p).Error; err != nil {
		return Facts{}, err
	}
	var f Facts
	if len(p.PurgeFacts) > 0 {
		return f, json.Unmarshal(p.PurgeFacts, &f)
	}
	f.Schema, f.Role = db.TenantSchema(t.ID), db.TenantSchema(t.ID)
	tx, err := s.d.OwnerPool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return f, err
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	tables, err := tablesOf(ctx, tx, t.ID)
	if err != nil {
		return f, err
	}
	f.Tables, f.PlatformRows, f.Retained = []TableCount{}, []TableCount{}, []TableCount{}
	for _, et := range tables {
		var n int64
		if err := tx.QueryRow(ctx, "SELECT count(*) FROM "+et.ident()+" t"+et.where).Scan(&n); err != nil {
			return f, err
		}
		tc := TableCount{Name: et.schema + "." + et.name, Rows: n}
		switch {
		case et.source == "tenant":
			f.Tables = append(f.Tables, tc)
		case keptTable(et.name):
			f.Retained = append(f.Retained, tc)
		default:
			tc.Name = et.name
			f.PlatformRows = append(f.PlatformRows, tc)
		}
	}
	for _, n := range excludedPlatformTables { // the keyset row: kept as evidence, without key material
		if n == "tenant_keysets" {
			var c int64
			if err := tx.QueryRow(ctx, "SELECT count(*) FROM tenantry.tenant_keysets WHERE tenant_id = $1", t.ID).Scan(&c); err != nil {
				return f, err
			}
			f.Retained = append(f.Retained, TableCount{Name: "tenantry.tenant_keysets", Rows: c})
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return f, err
	}
	if s.keys != nil {
		st, err := s.keys.Status(ctx, t.ID)
		switch {
		case err == nil:
			f.KeyIDs = st.KeyIDs
		case !errors.Is(err, keys.ErrNoKeyset):
			return f, err
		}
	}
	if f.KeyIDs == nil {
		f.KeyIDs = []uint32{}
	}
	var es []Export
	if err := s.d.App.WithContext(ctx).Where("tenant_id = ? AND state IN ('done', 'deleted') AND file_name <> ''", t.ID).Order("id").Find(&es).Error; err != nil {
		return f, err
	}
	f.Exports = []ExportDeletion{}
	for _, e := range es {
		f.Exports = append(f.Exports, ExportDeletion{ID: e.ID, File: e.FileName, SHA256: e.SHA256})
	}
	b, err := json.Marshal(f)
	if err != nil {
		return f, err
	}
	res := s.d.App.WithContext(ctx).Model(&Plan{}).Where("tenant_id = ? AND purge_facts IS NULL", t.ID).
		Updates(map[string]any{"purge_facts": b, "purge_operator": actor})
	if res.Error != nil {
		return f, res.Error
	}
	if res.RowsAffected == 0 { // another purge got there first: use its facts
		return s.captureFacts(ctx, t, actor)
	}
	return f, nil
}

// Tick is the periodic step: it queues due campaign messages, takes every due step (notice →
// degraded → suspended at their dates, suspended → exported when the export is done, exported →
// purged after retention without a legal hold), and runs pending or crashed exports.
func (s *Service) Tick(ctx context.Context) error {
	var errs []error
	if err := s.advance(ctx); err != nil {
		errs = append(errs, err)
	}
	if _, err := s.RunOpenExports(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.advance(ctx); err != nil {
		errs = append(errs, err)
	}
	if _, err := s.SendDue(ctx); err != nil {
		errs = append(errs, err)
	}
	if _, err := s.DeleteExpiredExports(ctx); err != nil {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

// DeleteExpiredExports deletes the archives whose keeping time (the policy's export_keep_days)
// has passed, and marks them deleted, audited. It returns how many it deleted.
func (s *Service) DeleteExpiredExports(ctx context.Context) (int, error) {
	var es []Export
	if err := s.d.App.WithContext(ctx).Where("state = 'done' AND expires_at <= ?", s.Now()).Order("id").Find(&es).Error; err != nil {
		return 0, err
	}
	for i, e := range es {
		if err := os.Remove(s.ArchivePath(e)); err != nil && !errors.Is(err, os.ErrNotExist) {
			return i, err
		}
		err := s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			res := tx.Model(&Export{}).Where("id = ? AND state = 'done'", e.ID).Updates(map[string]any{"state": ExportDeleted, "deleted_at": s.Now()})
			if res.Error != nil || res.RowsAffected == 0 {
				return res.Error
			}
			return audit.Record(tx, audit.Event{TenantID: &e.TenantID, Actor: systemActor, Action: "tenant.export_expired",
				Target: e.FileName, Detail: audit.Detail(map[string]any{"export": e.ID, "sha256": e.SHA256, "expired_at": e.ExpiresAt})})
		})
		if err != nil {
			return i, err
		}
	}
	return len(es), nil
}

// Advance takes every step that is due, like Tick, but runs no export: a tenant reaching
// suspension gets its export requested (for the export worker) and stays suspended until it is
// done.
func (s *Service) Advance(ctx context.Context) error { return s.advance(ctx) }

func (s *Service) advance(ctx context.Context) error {
	var plans []Plan
	if err := s.d.App.WithContext(ctx).Where("cancelled_at IS NULL AND purged_at IS NULL").Order("tenant_id").Find(&plans).Error; err != nil {
		return err
	}
	var errs []error
	for _, p := range plans {
		for range 5 { // several steps may be due at once
			moved, err := s.step(ctx, p)
			if err != nil {
				errs = append(errs, fmt.Errorf("tenant %d: %w", p.TenantID, err))
				break
			}
			if !moved {
				break
			}
			if err := s.d.App.WithContext(ctx).Where("tenant_id = ?", p.TenantID).Take(&p).Error; err != nil {
				return err
			}
		}
	}
	return errors.Join(errs...)
}

const systemActor = "system:lifecycle"

func (s *Service) step(ctx context.Context, p Plan) (bool, error) {
	t, err := s.tenantByID(ctx, p.TenantID)
	if err != nil {
		return false, err
	}
	now := s.Now()
	switch t.State {
	case Notice:
		if now.Before(p.DegradeAt) {
			return false, nil
		}
		err := s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			_, err := s.Transition(tx, t.ID, Degraded, systemActor, "read-only until suspension on "+p.SuspendAt.Format(dateLayout))
			return err
		})
		return err == nil, err
	case Degraded:
		if now.Before(p.SuspendAt) {
			return false, nil
		}
		return true, s.suspend(ctx, t, systemActor)
	case Suspended:
		e, ok, err := s.LatestExport(ctx, t.ID, false)
		if err != nil {
			return false, err
		}
		if !ok || e.State == ExportFailed || e.State == ExportDeleted {
			_, err := s.RequestExport(ctx, systemActor, t.ID)
			return false, err
		}
		if e.State != ExportDone {
			return false, nil
		}
		return true, s.markExported(ctx, t, e, systemActor)
	case Exported:
		if err := s.PurgeCheck(ctx, t.ID); err != nil {
			return false, nil // retention running or legal hold: the tenant waits
		}
		_, err := s.Purge(ctx, systemActor, t.ID)
		return err == nil, err
	}
	return false, nil
}

// Certificates returns the tenant's certificate document (the signed JSON file), if any.
func (s *Service) CertificateOf(ctx context.Context, tenantID int64) ([]byte, bool, error) {
	var row struct{ Document []byte }
	err := s.d.App.WithContext(ctx).Raw("SELECT document FROM tenantry.destruction_certificates WHERE tenant_id = ?", tenantID).Scan(&row).Error
	return row.Document, len(row.Document) > 0, err
}
