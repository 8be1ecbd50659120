package keys

import (
	"database/sql/driver"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// keysetRow is a tenant's wrapped keyset. EncryptedKeyset is nil once destroyed; the row stays,
// with its key ids and dates, as evidence.
type keysetRow struct {
	TenantID        int64      `gorm:"column:tenant_id;primaryKey"`
	EncryptedKeyset []byte     `gorm:"column:encrypted_keyset"`
	PrimaryKeyID    int64      `gorm:"column:primary_key_id"`
	KeyIDs          int64Array `gorm:"column:key_ids;type:bigint[]"`
	CreatedAt       time.Time  `gorm:"column:created_at"`
	RotatedAt       *time.Time `gorm:"column:rotated_at"`
	DestroyedAt     *time.Time `gorm:"column:destroyed_at"`
}

func (keysetRow) TableName() string { return "tenantry.tenant_keysets" }

// Rotation is one rotation of a tenant's keyset and the progress of re-encrypting the tenant's
// data under the new primary key.
type Rotation struct {
	ID       int64
	TenantID int64
	// StartedAt is when the new primary key took effect.
	StartedAt time.Time
	// FinishedAt is set when every registered Reencrypter has rewritten the tenant's data.
	FinishedAt      *time.Time
	NewPrimaryKeyID uint32 `gorm:"column:new_primary_key_id"`
	// ItemsTotal is nil until the re-encryption job has counted the items.
	ItemsTotal *int
	ItemsDone  int
	// Error is the last failure of the re-encryption job; River retries it.
	Error *string
}

// TableName places rotations in the control plane.
func (Rotation) TableName() string { return "tenantry.key_rotations" }

// int64Array maps a PostgreSQL bigint[] in its text form, which is how the pgx stdlib driver
// hands arrays to database/sql.
type int64Array []int64

// Value renders the array literal.
func (a int64Array) Value() (driver.Value, error) {
	if a == nil {
		return nil, nil
	}
	parts := make([]string, len(a))
	for i, v := range a {
		parts[i] = strconv.FormatInt(v, 10)
	}
	return "{" + strings.Join(parts, ",") + "}", nil
}

// Scan parses the array literal.
func (a *int64Array) Scan(src any) error {
	var s string
	switch v := src.(type) {
	case nil:
		*a = nil
		return nil
	case string:
		s = v
	case []byte:
		s = string(v)
	default:
		return fmt.Errorf("keys: cannot scan %T into bigint[]", src)
	}
	s = strings.TrimSpace(s)
	if len(s) < 2 || s[0] != '{' || s[len(s)-1] != '}' {
		return fmt.Errorf("keys: not a bigint[] literal: %q", s)
	}
	s = s[1 : len(s)-1]
	out := int64Array{}
	if s != "" {
		for _, p := range strings.Split(s, ",") {
			v, err := strconv.ParseInt(strings.TrimSpace(p), 10, 64)
			if err != nil {
				return fmt.Errorf("keys: bigint[] element: %w", err)
			}
			out = append(out, v)
		}
	}
	*a = out
	return nil
}
