// Package credentials owns a tenant's integration credentials (API tokens of the services it
// connects, passwords of its SMTP relay, ...). They live in the tenant's own schema, encrypted
// with the tenant's own key: Tenantry can use them on the tenant's behalf, but no page ever shows
// them again after they are set, and destroying the tenant's key makes them unreadable.
package credentials

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/validation"
)

// ErrNotFound means the tenant has no credential of that name.
var ErrNotFound = errors.New("credentials: not found")

// MaxValueBytes bounds one credential's value.
const MaxValueBytes = 8 << 10

// Credential is a stored credential as lists show it: never its value.
type Credential struct {
	ID    int64
	Name  string
	SetBy string
	SetAt time.Time
}

// row is the tenant-plane table.
type row struct {
	ID         int64
	Name       string
	Ciphertext []byte
	SetBy      string
	SetAt      time.Time
}

func (row) TableName() string { return "credentials" }
func (row) TenantSchema()     {}

// Service stores and reads credentials.
type Service struct {
	db   *db.DB
	keys *keys.Service
}

// NewService returns a Service; register it with keys.Service.RegisterReencrypter so rotations
// move its ciphertexts to the new key.
func NewService(d *db.DB, k *keys.Service) *Service { return &Service{db: d, keys: k} }

var nameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_.-]{0,63}$`)

// associatedData binds a ciphertext to its tenant and name, so it cannot be moved to another.
func associatedData(tenantID int64, name string) []byte {
	return fmt.Appendf(nil, "tenantry.credential:%d:%s", tenantID, name)
}

// Set stores (or replaces) a credential, encrypted with the tenant's key, and audits that it
// was set (name and actor only).
func (s *Service) Set(ctx context.Context, actor string, tenantID int64, name, value string) error {
	name = strings.ToLower(strings.TrimSpace(name))
	errs := validation.Errors{}
	if !nameRE.MatchString(name) {
		errs.Add("name", "Use 1–64 lowercase letters, digits, dots, dashes or underscores, such as stripe.api_key.")
	}
	switch {
	case value == "":
		errs.Add("value", "Enter the secret value.")
	case len(value) > MaxValueBytes:
		errs.Add("value", "Use at most 8 KiB.")
	}
	if err := errs.Err(); err != nil {
		return err
	}
	ct, err := s.keys.Encrypt(ctx, tenantID, []byte(value), associatedData(tenantID, name))
	if err != nil {
		return err
	}
	return s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		r := row{Name: name, Ciphertext: ct, SetBy: actor, SetAt: time.Now().UTC()}
		err := tx.Clauses(clause.OnConflict{Columns: []clause.Column{{Name: "name"}},
			DoUpdates: clause.AssignmentColumns([]string{"ciphertext", "set_by", "set_at"})}).Create(&r).Error
		if err != nil {
			return err
		}
		return db.AsPlatform(tx, func(ptx *gorm.DB) error {
			return audit.Record(ptx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "credential.set", Target: name})
		})
	})
}

// List returns the tenant's credentials by name, without values.
func (s *Service) List(ctx context.Context, tenantID int64) ([]Credential, error) {
	var out []Credential
	err := s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		var rs []row
		if err := tx.Omit("ciphertext").Order("name").Find(&rs).Error; err != nil {
			return err
		}
		for _, r := range rs {
			out = append(out, Credential{ID: r.ID, Name: r.Name, SetBy: r.SetBy, SetAt: r.SetAt})
		}
		return nil
	})
	return out, err
}

// Reveal decrypts a credential for use on the tenant's behalf (never for display).
func (s *Service) Reveal(ctx context.Context, tenantID int64, name string) ([]byte, error) {
	var r row
	err := s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		return tx.Where("name = ?", name).Take(&r).Error
	})
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return s.keys.Decrypt(ctx, tenantID, r.Ciphertext, associatedData(tenantID, r.Name))
}

// Count tells a key rotation how many ciphertexts the tenant has here.
func (s *Service) Count(ctx context.Context, tenantID int64) (int, error) {
	var n int64
	err := s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error { return tx.Model(&row{}).Count(&n).Error })
	return int(n), err
}

// Reencrypt moves every credential of the tenant to its current primary key, in batches.
func (s *Service) Reencrypt(ctx context.Context, tenantID int64, rewrap keys.Rewrap, progress func(done int) error) error {
	const batch = 100
	done := 0
	var lastID int64
	for {
		var n int
		err := s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
			var rs []row
			if err := tx.Where("id > ?", lastID).Order("id").Limit(batch).Find(&rs).Error; err != nil {
				return err
			}
			n = len(rs)
			for _, r := range rs {
				lastID = r.ID
				ct, err := rewrap(r.Ciphertext, associatedData(tenantID, r.Name))
				if err != nil {
					return fmt.Errorf("credential %s: %w", r.Name, err)
				}
				if bytes.Equal(ct, r.Ciphertext) {
					continue
				}
				if err := tx.Model(&row{}).Where("id = ?", r.ID).Update("ciphertext", ct).Error; err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		done += n
		if err := progress(done); err != nil {
			return err
		}
		if n < batch {
			return nil
		}
	}
}
