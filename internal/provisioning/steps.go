package provisioning

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/mail"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/migrations"
)

// execute performs one step for run r. tx is the step's transaction on the app pool (it holds
// the run's lock and commits the step's completion): control-plane effects go through it, so they
// commit exactly with the step. Effects elsewhere (DDL on the owner connection, writes in the
// tenant's schema) are idempotent on their own. It returns a note for the progress panel.
func (s *Service) execute(ctx context.Context, tx *gorm.DB, r Run, step string) (string, error) {
	if r.TenantID == nil {
		return "", permanent{errors.New("the run's tenant was removed")}
	}
	id := *r.TenantID
	switch step {
	case StepValidate:
		var t tenant.Tenant
		if err := tx.Take(&t, id).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			return "", permanent{fmt.Errorf("tenant %d no longer exists", id)}
		} else if err != nil {
			return "", err
		}
		if t.State != "provisioning" && t.State != "active" {
			return "", permanent{fmt.Errorf("tenant %s is %s, not provisioning", t.Slug, t.State)}
		}
		if p := SlugProblem(t.Slug); p != "" {
			return "", permanent{fmt.Errorf("slug %q: %s", t.Slug, p)}
		}
		if r.AdminEmail != "" {
			if p := EmailProblem(r.AdminEmail); p != "" {
				return "", permanent{fmt.Errorf("admin e-mail %q: %s", r.AdminEmail, p)}
			}
		}
		if r.TemplateVersionID != nil {
			if _, err := s.templates.Version(ctx, *r.TemplateVersionID); err != nil {
				return "", fmt.Errorf("template version %d: %w", *r.TemplateVersionID, err)
			}
		}
		return "tenant " + t.Slug + " (id " + strconv.FormatInt(id, 10) + ") registered, plan " + t.PlanKey, nil

	case StepSchema:
		if err := s.db.EnsureTenantPlane(ctx, id, s.log); err != nil {
			return "", err
		}
		return "schema and role " + db.TenantSchema(id), nil

	case StepMigrations:
		// The schema's own version table must say it is at the newest tenant migration; when it
		// is behind (a migration was added since the schema was made, or it was interrupted),
		// EnsureTenantPlane applies what is pending.
		version := func() (int64, error) {
			var have int64
			q := "SELECT coalesce(max(version_id), 0) FROM " + pgx.Identifier{db.TenantSchema(id), "goose_db_version"}.Sanitize() + " WHERE is_applied"
			err := s.db.OwnerPool.QueryRow(ctx, q).Scan(&have)
			return have, err
		}
		want := latestTenantMigration()
		have, err := version()
		if err != nil || have < want {
			if err := s.db.EnsureTenantPlane(ctx, id, s.log); err != nil {
				return "", err
			}
			if have, err = version(); err != nil {
				return "", err
			}
		}
		if have < want {
			return "", fmt.Errorf("%s is at migration %d, want %d", db.TenantSchema(id), have, want)
		}
		return fmt.Sprintf("at tenant migration %d", have), nil

	case StepKey:
		if s.keys == nil {
			return "no master key configured: tenant keyset not created", nil
		}
		if err := s.keys.Create(ctx, tx, id); err != nil {
			if errors.Is(err, keys.ErrKeysetDestroyed) {
				return "", permanent{err}
			}
			return "", err
		}
		return "AES-256-GCM keyset, wrapped by the master key", nil

	case StepQuotas:
		res := tx.Exec(`INSERT INTO tenantry.quota_limits (tenant_id, dimension, soft_limit, hard_limit)
			SELECT ?, d.dimension, d.soft_limit, d.hard_limit FROM tenantry.plan_quota_defaults d
			JOIN tenantry.tenants t ON t.plan_key = d.plan_key WHERE t.id = ?
			ON CONFLICT (tenant_id, dimension) DO NOTHING`, id, id)
		if res.Error != nil {
			return "", res.Error
		}
		var n int64
		if err := tx.Raw("SELECT count(*) FROM tenantry.quota_limits WHERE tenant_id = ?", id).Scan(&n).Error; err != nil {
			return "", err
		}
		note := fmt.Sprintf("%d dimensions from plan %s", n, r.PlanKey)
		if r.TemplateVersionID != nil {
			v, err := s.templates.Version(ctx, *r.TemplateVersionID)
			if err != nil {
				return "", err
			}
			if err := s.templates.Apply(tx, id, v, runActor(r)); err != nil {
				return "", err
			}
			note = fmt.Sprintf("%d dimensions, %d set by template %s", n, len(v.Quotas), v.Label())
		}
		return note, nil

	case StepConfig:
		if r.TemplateVersionID == nil {
			return "no template: platform defaults and the parent's settings apply", nil
		}
		v, err := s.templates.Version(ctx, *r.TemplateVersionID)
		if err != nil {
			return "", err
		}
		if err := s.templates.Apply(tx, id, v, runActor(r)); err != nil {
			return "", err
		}
		return fmt.Sprintf("template %s: %d settings and flags, compliance %s", v.Label(), len(v.Settings), v.Compliance), nil

	case StepAdmin:
		return s.createAdmin(ctx, r)

	case StepSeed:
		dataset := "sample-projects"
		if r.TemplateVersionID != nil {
			v, err := s.templates.Version(ctx, *r.TemplateVersionID)
			if err != nil {
				return "", err
			}
			dataset = v.SeedDataset
		}
		rows := seedDatasets[dataset]
		var added int64
		err := s.db.InTenant(ctx, id, func(ttx *gorm.DB) error {
			for _, p := range rows {
				row := Project{Key: p.Key, Name: p.Name, Description: p.Description, SeededFrom: dataset, CreatedBy: runActor(r)}
				res := ttx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "key"}}, DoNothing: true}).Omit("ID", "CreatedAt").Create(&row)
				if res.Error != nil {
					return res.Error
				}
				added += res.RowsAffected
			}
			if added == 0 {
				return nil
			}
			return audit.RecordTenant(ttx, audit.TenantEvent{Actor: runActor(r), Action: "data.seeded", Target: dataset,
				Detail: audit.Detail(map[string]any{"projects": added})})
		})
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("dataset %s: %d projects", dataset, len(rows)), nil

	case StepActivate:
		res := tx.Model(&tenant.Tenant{}).Where("id = ? AND state = 'provisioning'", id).Updates(map[string]any{"state": "active", "updated_at": s.now()})
		if res.Error != nil {
			return "", res.Error
		}
		if res.RowsAffected == 1 {
			if err := audit.Record(tx, audit.Event{TenantID: &id, Actor: "system:provisioning", Action: "tenant.activated",
				Target: r.TenantSlug, Detail: audit.Detail(map[string]any{"schema": db.TenantSchema(id), "run_id": r.ID})}); err != nil {
				return "", err
			}
		}
		return "tenant active", nil

	case StepNotify:
		to := r.AdminEmail
		if to == "" && EmailProblem(r.RequestedBy) == "" {
			to = r.RequestedBy
		}
		if to == "" {
			return "nobody to notify", nil
		}
		link := s.baseURL + "/t/" + r.TenantSlug
		_, err := mail.Enqueue(tx, mail.Message{TenantID: &id, Kind: "provisioning.ready", DedupKey: dedupReady(r), To: to,
			Subject: "Your tenant " + strings.Join(strings.Fields(r.TenantName), " ") + " is ready",
			Text:    fmt.Sprintf("Hello,\n\nThe tenant %s (%s) is ready on Tenantry.\n\nIts portal: %s\n", r.TenantName, r.TenantSlug, link)})
		if err != nil {
			return "", err
		}
		return "ready message queued to " + to, nil
	}
	return "", permanent{fmt.Errorf("unknown step %q", step)}
}

func dedupInvitation(r Run) string {
	return "provisioning:" + strconv.FormatInt(r.ID, 10) + ":invitation"
}
func dedupReady(r Run) string { return "provisioning:" + strconv.FormatInt(r.ID, 10) + ":ready" }

// createAdmin gives the tenant its first admin: with the password chosen at signup, the user
// directly; otherwise an invitation with a single-use set-password link, and its e-mail. Both are
// written in the tenant's own transaction, so the invitation and its e-mail commit together; a
// second attempt finds what the first made and adds nothing.
func (s *Service) createAdmin(ctx context.Context, r Run) (string, error) {
	if r.AdminEmail == "" {
		return "no admin e-mail given: no admin account", nil
	}
	id := *r.TenantID
	t := tenant.Tenant{ID: id, Slug: r.TenantSlug, Name: r.TenantName}
	note := ""
	err := s.db.InTenant(ctx, id, func(tx *gorm.DB) error {
		var users int64
		if err := tx.Model(&tenantauth.User{}).Where("email = ?", r.AdminEmail).Count(&users).Error; err != nil {
			return err
		}
		if r.AdminPasswordHash != nil {
			note = "admin user " + r.AdminEmail + " (password chosen at signup)"
			if users > 0 {
				return nil
			}
			u := tenantauth.User{Email: r.AdminEmail, Name: r.AdminEmail, Role: tenantauth.RoleAdmin, PasswordHash: *r.AdminPasswordHash, SessionEpoch: 1}
			if err := tx.Create(&u).Error; err != nil {
				return err
			}
			return audit.RecordTenant(tx, audit.TenantEvent{Actor: runActor(r), Action: "user.created", Target: u.Email,
				Detail: audit.Detail(map[string]any{"role": u.Role, "run_id": r.ID})})
		}
		note = "invitation sent to " + r.AdminEmail
		if users > 0 {
			note = "admin " + r.AdminEmail + " already has an account"
			return nil
		}
		var invited int64
		if err := tx.Model(&tenantauth.Invitation{}).Where("created_by = ?", runActor(r)).Count(&invited).Error; err != nil {
			return err
		}
		if invited > 0 {
			return nil
		}
		_, err := tenantauth.InviteTx(tx, t, runActor(r), tenantauth.NewInvitation{Email: r.AdminEmail, Role: tenantauth.RoleAdmin,
			DedupKey: dedupInvitation(r), BaseURL: s.baseURL})
		return err
	})
	return note, err
}

// undo reverses one step for a cancelled run r, inside tx (the compensation's transaction); it
// returns a note for the progress panel. Every undo is idempotent.
func (s *Service) undo(ctx context.Context, tx *gorm.DB, r Run, step string) (string, error) {
	id := *r.TenantID
	switch step {
	case StepNotify:
		if err := tx.Exec(`UPDATE tenantry.mail_outbox SET state = 'failed', last_error = 'provisioning cancelled'
			WHERE dedup_key = ? AND state = 'pending'`, dedupReady(r)).Error; err != nil {
			return "", err
		}
		return "ready message withdrawn unless already sent", nil
	case StepActivate:
		return "tenant removed below", nil
	case StepSeed:
		return "seed data dropped with the schema", nil
	case StepAdmin:
		if exists, err := s.schemaExists(ctx, id); err != nil {
			return "", err
		} else if exists {
			err := s.db.InTenant(ctx, id, func(ttx *gorm.DB) error {
				if err := ttx.Where("created_by = ?", runActor(r)).Delete(&tenantauth.Invitation{}).Error; err != nil {
					return err
				}
				return ttx.Where("email = ?", r.AdminEmail).Delete(&tenantauth.User{}).Error
			})
			if err != nil {
				return "", err
			}
		}
		if err := tx.Exec(`UPDATE tenantry.mail_outbox SET state = 'failed', last_error = 'invitation revoked: provisioning cancelled'
			WHERE dedup_key = ? AND state = 'pending'`, dedupInvitation(r)).Error; err != nil {
			return "", err
		}
		return "invitation revoked", nil
	case StepConfig:
		if err := tx.Exec("DELETE FROM tenantry.setting_values WHERE tenant_id = ?", id).Error; err != nil {
			return "", err
		}
		if err := tx.Exec("UPDATE tenantry.tenants SET template_version_id = NULL WHERE id = ?", id).Error; err != nil {
			return "", err
		}
		return "settings removed", nil
	case StepQuotas:
		if err := tx.Exec("DELETE FROM tenantry.quota_limits WHERE tenant_id = ?", id).Error; err != nil {
			return "", err
		}
		return "quota limits removed", nil
	case StepKey:
		if s.keys == nil {
			return "no keyset", nil
		}
		if err := s.keys.Destroy(ctx, runActor(r), id); err != nil && !errors.Is(err, keys.ErrNoKeyset) {
			return "", err
		}
		return "keyset destroyed (its row goes with the tenant)", nil
	case StepMigrations:
		return "dropped with the schema", nil
	case StepSchema:
		if err := s.db.DropTenantPlane(ctx, id); err != nil {
			return "", err
		}
		return "schema and role dropped", nil
	case StepValidate:
		return "tenant removed; its slug is free again", nil
	}
	return "", fmt.Errorf("unknown step %q", step)
}

func (s *Service) schemaExists(ctx context.Context, id int64) (bool, error) {
	var ok bool
	err := s.db.OwnerPool.QueryRow(ctx, "SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)", db.TenantSchema(id)).Scan(&ok)
	return ok, err
}

// latestTenantMigration is the newest embedded tenant migration's version.
var latestTenantMigration = sync.OnceValue(func() int64 {
	entries, err := fs.ReadDir(migrations.Tenant, "tenant")
	if err != nil {
		panic(err) // embedded at build time
	}
	var versions []int64
	for _, e := range entries {
		num, _, _ := strings.Cut(e.Name(), "_")
		if v, err := strconv.ParseInt(num, 10, 64); err == nil {
			versions = append(versions, v)
		}
	}
	return slices.Max(versions)
})

// Project is a row of the tenant schema's projects table.
type Project struct {
	ID          int64
	Key         string
	Name        string
	Description string
	SeededFrom  string
	CreatedBy   string
	CreatedAt   time.Time
}

// TableName is the tenant schema's projects table.
func (Project) TableName() string { return "projects" }

// TenantSchema marks the table as living in each tenant's own schema.
func (Project) TenantSchema() {}

// project is one row of a seed dataset.
type project struct{ Key, Name, Description string }

// seedDatasets are the initial data a new tenant may get, by the name templates use.
var seedDatasets = map[string][]project{
	"empty": nil,
	"sample-projects": {
		{"getting-started", "Getting started", "A tour of the portal: invite your team, set your branding, create an API key."},
		{"website", "Website relaunch", "A sample project with a few milestones."},
		{"internal-tools", "Internal tools", "A sample project for your own integrations."},
	},
}
