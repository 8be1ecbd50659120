// Package apikeys owns tenant-scoped API keys: the credentials with which a governed service calls
// Tenantry's REST API on behalf of exactly one tenant.
//
// A key reads tnt_<tenant id>_<prefix>_<secret>. The tenant id tells which tenant schema holds the
// key (keys live in each tenant's own schema, so there is no global table to look them up in);
// the prefix names the row; the secret is 32 random bytes, base64url. Only a SHA-256 digest of the
// secret, bound to the tenant and the prefix, is stored, and the full key is returned once, by
// Create. A key only works from the tenant's IP allowlist and while the tenant is serving.
//
// Creating and revoking keys are recorded in the platform audit trail, in the same transaction,
// with the key's prefix and never any secret material.
package apikeys

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// Sentinel errors. Authentication failures all wrap ErrUnauthorized (HTTP 401); ErrRevoked and
// ErrExpired are returned only after the secret matched, so saying which one leaks nothing.
var (
	// ErrUnauthorized means the key is missing, malformed, unknown, or its secret does not match.
	ErrUnauthorized = errors.New("apikeys: invalid API key")
	// ErrRevoked means a correct key that was revoked.
	ErrRevoked = fmt.Errorf("%w: revoked", ErrUnauthorized)
	// ErrExpired means a correct key past its expiry.
	ErrExpired = fmt.Errorf("%w: expired", ErrUnauthorized)
	// ErrForbiddenAddr means a correct key used from an address outside the tenant's IP allowlist.
	ErrForbiddenAddr = errors.New("apikeys: address not in the tenant's IP allowlist")
	// ErrTenantNotServing means the tenant is in a state that refuses API calls and new keys
	// (provisioning, suspended, exported, purged). The error is a *NotServingError.
	ErrTenantNotServing = errors.New("apikeys: tenant is not serving")
	// ErrNotFound means the tenant has no key with that id.
	ErrNotFound = errors.New("apikeys: key not found")
)

// NotServingError tells which tenant refused and in which state it is.
type NotServingError struct {
	Slug  string
	State string
}

func (e *NotServingError) Error() string {
	return fmt.Sprintf("apikeys: tenant %s is %s", e.Slug, e.State)
}

// Is makes errors.Is(err, ErrTenantNotServing) true.
func (e *NotServingError) Is(target error) bool { return target == ErrTenantNotServing }

// servingStates accept API calls. A tenant in notice or degraded is being wound down but still
// serves; suspended, exported and purged tenants do not.
var servingStates = []string{"active", "notice", "degraded"}

// Serving reports whether a tenant in state accepts API calls and new keys.
func Serving(state string) bool { return slices.Contains(servingStates, state) }

// HasKeys reports whether a tenant in state has a schema that can hold keys (listing and revoking
// work in every such state, also when the tenant does not serve).
func HasKeys(state string) bool { return state != "provisioning" && state != "purged" }

const (
	keyScheme = "tnt"
	// prefixBytes of randomness name a key (hex in the key); unique within its tenant's schema.
	prefixBytes = 6
	secretBytes = 32
	// lastUsedEvery bounds how often a key's last_used_at is written.
	lastUsedEvery = time.Minute
	maxName       = 100
)

// Key is an API key as it can be shown: never its secret.
type Key struct {
	ID       int64
	TenantID int64
	Name     string
	// Prefix identifies the key to people and in the audit trail: tnt_<tenant id>_<prefix>.
	Prefix     string
	CreatedBy  string
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

// Status is "revoked", "expired" or "active" at time now.
func (k Key) Status(now time.Time) string {
	switch {
	case k.RevokedAt != nil:
		return "revoked"
	case k.ExpiresAt != nil && !now.Before(*k.ExpiresAt):
		return "expired"
	default:
		return "active"
	}
}

// Issued is a newly created key with the full key, which exists only in this value.
type Issued struct {
	Key
	// FullKey is what the service sends as its bearer token. It is not stored and cannot be
	// shown again.
	FullKey string
}

// Principal is who an authenticated request acts for.
type Principal struct {
	KeyID   int64
	KeyName string
	// Tenant is the key's tenant as it was read while authenticating.
	Tenant tenant.Tenant
}

// apiKey is the row in the tenant's schema.
type apiKey struct {
	ID         int64
	Name       string
	Prefix     string
	SecretHash []byte
	CreatedBy  string
	CreatedAt  time.Time
	ExpiresAt  *time.Time
	LastUsedAt *time.Time
	RevokedAt  *time.Time
}

func (apiKey) TableName() string { return "api_keys" }
func (apiKey) TenantSchema()     {}

func (r apiKey) key(tenantID int64) Key {
	return Key{ID: r.ID, TenantID: tenantID, Name: r.Name, Prefix: displayPrefix(tenantID, r.Prefix),
		CreatedBy: r.CreatedBy, CreatedAt: r.CreatedAt, ExpiresAt: r.ExpiresAt, LastUsedAt: r.LastUsedAt, RevokedAt: r.RevokedAt}
}

// Service creates, lists, revokes and authenticates API keys.
type Service struct {
	db      *db.DB
	now     func() time.Time
	checked *checkedKeys
}

// NewService returns a Service on d.
func NewService(d *db.DB) *Service {
	return &Service{db: d, now: func() time.Time { return time.Now().UTC() }, checked: newCheckedKeys()}
}

// tenantByID reads the tenant from the control plane.
func (s *Service) tenantByID(ctx context.Context, id int64) (tenant.Tenant, error) {
	t, err := s.tenantWithEpoch(ctx, id)
	return t.Tenant, err
}

// tenantRow is a tenant with the epoch of its API keys (see checkedKeys).
type tenantRow struct {
	tenant.Tenant `gorm:"embedded"`
	APIKeyEpoch   int64
}

func (tenantRow) TableName() string { return "tenantry.tenants" }

func (s *Service) tenantWithEpoch(ctx context.Context, id int64) (tenantRow, error) {
	var t tenantRow
	err := s.db.App.WithContext(ctx).Where("id = ?", id).Take(&t).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return t, tenant.ErrNotFound
	}
	return t, err
}

// Create issues a key for the tenant, named name and valid until expiresAt (nil: no expiry). The
// returned Issued.FullKey is the only copy of the key. Bad input returns validation errors for
// the fields "name" and "expires_at"; a tenant that is not serving returns ErrTenantNotServing.
func (s *Service) Create(ctx context.Context, actor string, tenantID int64, name string, expiresAt *time.Time) (Issued, error) {
	now := s.now()
	name = strings.TrimSpace(name)
	errs := validation.Errors{}
	switch {
	case name == "":
		errs.Add("name", "Enter a name that says which service uses the key.")
	case len([]rune(name)) > maxName:
		errs.Add("name", "Use at most 100 characters.")
	}
	if expiresAt != nil && !expiresAt.After(now) {
		errs.Add("expires_at", "Choose a date in the future, or leave it empty for a key that does not expire.")
	}
	if err := errs.Err(); err != nil {
		return Issued{}, err
	}
	t, err := s.tenantByID(ctx, tenantID)
	if err != nil {
		return Issued{}, err
	}
	if !Serving(t.State) {
		return Issued{}, &NotServingError{Slug: t.Slug, State: t.State}
	}
	prefix, secret, err := newPrefixAndSecret()
	if err != nil {
		return Issued{}, err
	}
	if expiresAt != nil {
		e := expiresAt.UTC().Truncate(time.Microsecond)
		expiresAt = &e
	}
	row := apiKey{Name: name, Prefix: prefix, SecretHash: secretHash(tenantID, prefix, secret), CreatedBy: actor,
		CreatedAt: now.Truncate(time.Microsecond), ExpiresAt: expiresAt}
	err = s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		if err := tx.Create(&row).Error; err != nil {
			return fmt.Errorf("apikeys: create: %w", err)
		}
		detail := map[string]any{"key_id": row.ID, "name": row.Name, "prefix": displayPrefix(tenantID, prefix)}
		if expiresAt != nil {
			detail["expires_at"] = expiresAt.Format(time.RFC3339)
		}
		return db.AsPlatform(tx, func(ptx *gorm.DB) error {
			return audit.Record(ptx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "api_key.created",
				Target: t.Slug, Detail: audit.Detail(detail)})
		})
	})
	if err != nil {
		return Issued{}, err
	}
	return Issued{Key: row.key(tenantID), FullKey: fullKey(tenantID, prefix, secret)}, nil
}

// List returns the tenant's keys, newest first, without secrets.
func (s *Service) List(ctx context.Context, tenantID int64) ([]Key, error) {
	var rows []apiKey
	err := s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		return tx.Omit("secret_hash").Order("created_at DESC, id DESC").Find(&rows).Error
	})
	keys := make([]Key, len(rows))
	for i, r := range rows {
		keys[i] = r.key(tenantID)
	}
	return keys, err
}

// Revoke stops the tenant's key id from working at once and records who did it. Revoking a key
// that is already revoked changes nothing and records nothing.
func (s *Service) Revoke(ctx context.Context, actor string, tenantID, id int64) (Key, error) {
	t, err := s.tenantByID(ctx, tenantID)
	if err != nil {
		return Key{}, err
	}
	if !HasKeys(t.State) {
		return Key{}, ErrNotFound
	}
	var row apiKey
	err = s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		if err := tx.Omit("secret_hash").Where("id = ?", id).Take(&row).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrNotFound
		} else if err != nil {
			return err
		}
		if row.RevokedAt != nil {
			return nil
		}
		now := s.now().Truncate(time.Microsecond)
		res := tx.Model(&apiKey{}).Where("id = ? AND revoked_at IS NULL", id).Update("revoked_at", now)
		if res.Error != nil || res.RowsAffected == 0 { // 0: revoked concurrently, recorded there
			return res.Error
		}
		row.RevokedAt = &now
		return db.AsPlatform(tx, func(ptx *gorm.DB) error {
			// Every node's memory of this tenant's checked keys is stale from this commit on.
			if err := ptx.Model(&tenantRow{}).Where("id = ?", tenantID).
				UpdateColumn("api_key_epoch", gorm.Expr("api_key_epoch + 1")).Error; err != nil {
				return err
			}
			return audit.Record(ptx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "api_key.revoked", Target: t.Slug,
				Detail: audit.Detail(map[string]any{"key_id": row.ID, "name": row.Name, "prefix": displayPrefix(tenantID, row.Prefix)})})
		})
	})
	if err != nil {
		return Key{}, err
	}
	return row.key(tenantID), nil
}

// Authenticate checks a full key presented from addr and returns whom it acts for. Errors:
// ErrUnauthorized (malformed, unknown, wrong secret; ErrRevoked and ErrExpired wrap it),
// ErrForbiddenAddr (addr outside the tenant's IP allowlist) and ErrTenantNotServing. The secret
// is checked first, so only the key's holder learns about the tenant's allowlist or state.
func (s *Service) Authenticate(ctx context.Context, full string, addr netip.Addr) (Principal, error) {
	tenantID, prefix, secret, ok := parseKey(full)
	if !ok {
		return Principal{}, ErrUnauthorized
	}
	t, err := s.tenantWithEpoch(ctx, tenantID)
	if errors.Is(err, tenant.ErrNotFound) || err == nil && !HasKeys(t.State) {
		return Principal{}, ErrUnauthorized
	}
	if err != nil {
		return Principal{}, err
	}
	now := s.now()
	digest := keyDigest(full)
	if k, ok := s.checked.get(digest); ok && k.tenantID == tenantID && k.epoch == t.APIKeyEpoch && now.Sub(k.lastUsedAt) < lastUsedEvery {
		if err := s.usable(t.Tenant, k.expiresAt, addr, now); err != nil {
			return Principal{}, err
		}
		return Principal{KeyID: k.id, KeyName: k.name, Tenant: t.Tenant}, nil
	}
	s.checked.forget(digest)
	var row apiKey
	err = s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		if err := tx.Where("prefix = ?", prefix).Take(&row).Error; errors.Is(err, gorm.ErrRecordNotFound) {
			return ErrUnauthorized
		} else if err != nil {
			return err
		}
		if subtle.ConstantTimeCompare(row.SecretHash, secretHash(tenantID, prefix, secret)) != 1 {
			return ErrUnauthorized
		}
		if row.RevokedAt != nil {
			return ErrRevoked
		}
		if err := s.usable(t.Tenant, row.ExpiresAt, addr, now); err != nil {
			return err
		}
		if row.LastUsedAt != nil && now.Sub(*row.LastUsedAt) < lastUsedEvery {
			return nil
		}
		// Conditional, so concurrent requests of one key write it at most once a minute too.
		row.LastUsedAt = &now
		return tx.Model(&apiKey{}).Where("id = ? AND (last_used_at IS NULL OR last_used_at < ?)", row.ID, now.Add(-lastUsedEvery)).
			Update("last_used_at", now).Error
	})
	if err != nil {
		return Principal{}, err
	}
	s.checked.put(digest, checkedKey{tenantID: tenantID, epoch: t.APIKeyEpoch, id: row.ID, name: row.Name,
		expiresAt: row.ExpiresAt, lastUsedAt: *row.LastUsedAt})
	return Principal{KeyID: row.ID, KeyName: row.Name, Tenant: t.Tenant}, nil
}

// usable checks what may change without the key itself changing: its expiry, the tenant's IP
// allowlist and the tenant's state.
func (s *Service) usable(t tenant.Tenant, expiresAt *time.Time, addr netip.Addr, now time.Time) error {
	switch {
	case expiresAt != nil && !now.Before(*expiresAt):
		return ErrExpired
	case !t.IPAllowlist.Allows(addr):
		return fmt.Errorf("%w: %s", ErrForbiddenAddr, addr)
	case !Serving(t.State):
		return &NotServingError{Slug: t.Slug, State: t.State}
	}
	return nil
}

// newPrefixAndSecret draws a key's prefix (hex) and secret (base64url, no padding).
func newPrefixAndSecret() (string, string, error) {
	b := make([]byte, prefixBytes+secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", "", fmt.Errorf("apikeys: random: %w", err)
	}
	return hex.EncodeToString(b[:prefixBytes]), base64.RawURLEncoding.EncodeToString(b[prefixBytes:]), nil
}

func fullKey(tenantID int64, prefix, secret string) string {
	return displayPrefix(tenantID, prefix) + "_" + secret
}

func displayPrefix(tenantID int64, prefix string) string {
	return keyScheme + "_" + strconv.FormatInt(tenantID, 10) + "_" + prefix
}

// parseKey splits tnt_<tenant id>_<prefix>_<secret>. The secret's base64url alphabet includes
// "_", so it is everything after the third separator.
func parseKey(full string) (tenantID int64, prefix, secret string, ok bool) {
	parts := strings.SplitN(full, "_", 4)
	if len(parts) != 4 || parts[0] != keyScheme {
		return 0, "", "", false
	}
	id, err := strconv.ParseInt(parts[1], 10, 64)
	if err != nil || id <= 0 || parts[1] != strconv.FormatInt(id, 10) {
		return 0, "", "", false
	}
	if p, err := hex.DecodeString(parts[2]); err != nil || len(p) != prefixBytes || parts[2] != strings.ToLower(parts[2]) {
		return 0, "", "", false
	}
	if s, err := base64.RawURLEncoding.Strict().DecodeString(parts[3]); err != nil || len(s) != secretBytes {
		return 0, "", "", false
	}
	return id, parts[2], parts[3], true
}

// secretHash is the stored digest: SHA-256 over the tenant id, the prefix and the secret, so a
// digest copied to another row or tenant does not match there. The secret has 256 bits of
// entropy, so a fast hash is enough (no password stretching needed).
func secretHash(tenantID int64, prefix, secret string) []byte {
	h := sha256.New()
	h.Write([]byte("tenantry-api-key\x00"))
	var id [8]byte
	binary.BigEndian.PutUint64(id[:], uint64(tenantID))
	h.Write(id[:])
	h.Write([]byte(prefix + "\x00" + secret))
	return h.Sum(nil)
}
