// Package keys owns per-tenant encryption: envelope encryption with one tink AEAD keyset per
// tenant, wrapped by a master key (a local key from configuration, or any KMS that offers tink's
// AEAD interface), key rotation with re-encryption of the tenant's data in a River job, and
// crypto-shredding, which destroys a tenant's keyset so that its ciphertexts, wherever they were
// copied, can no longer be decrypted.
//
// The keyset row stores only the wrapped keyset, bound to its tenant by associated data, so a
// row copied to another tenant does not unwrap. Key material never leaves this package: not in
// errors, logs or the audit trail (which records key ids only).
package keys

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
)

// Sentinel errors.
var (
	// ErrNoKeyset means the tenant has no keyset: Create was never called for it.
	ErrNoKeyset = errors.New("keys: tenant has no keyset")
	// ErrKeysetDestroyed means the tenant's keyset was destroyed: its data is unrecoverable.
	ErrKeysetDestroyed = errors.New("keys: tenant keyset destroyed")
	// ErrDecrypt means a ciphertext did not decrypt: another tenant's, other associated data,
	// or altered.
	ErrDecrypt = errors.New("keys: decryption failed")
	// ErrUnwrap means a stored keyset did not unwrap: another master key than the one that
	// wrapped it, or a row that was altered or copied from another tenant.
	ErrUnwrap = errors.New("keys: cannot unwrap tenant keyset (wrong master key or altered row)")
	// ErrTenantNotFound means no tenant has the id.
	ErrTenantNotFound = errors.New("keys: tenant not found")
)

// DefaultCacheTTL is how long a process keeps a tenant's unwrapped keyset in memory.
//
// A Rotate or Destroy takes effect at once on the process that runs it. Other processes notice
// within the TTL: until then they may still encrypt under the previous primary key (harmless:
// old keys stay in the keyset, and the re-encryption job is scheduled one TTL after the rotation
// so that it sees those writes), and may still decrypt a destroyed tenant's data for up to one
// TTL after Destroy. A process that meets a ciphertext under a key id it does not know reloads
// the keyset at once, so data written by a node that has already rotated always decrypts.
const DefaultCacheTTL = 30 * time.Second

// Option adjusts a Service.
type Option func(*Service)

// WithCacheTTL sets how long unwrapped keysets stay in memory; zero or less disables the cache
// (every call reads the database and unwraps with the master key). See DefaultCacheTTL.
func WithCacheTTL(ttl time.Duration) Option {
	return func(s *Service) { s.cache = newKeyCache(ttl) }
}

// Service encrypts and decrypts tenant data and manages tenant keysets.
type Service struct {
	db     *gorm.DB
	master Master
	cache  *keyCache
	// jobs only inserts (RotateArgs, in the rotating transaction); the server's client works them.
	jobs *river.Client[*sql.Tx]
	now  func() time.Time

	mu           sync.RWMutex
	reencrypters map[string]Reencrypter
}

// NewService returns a Service storing keysets through gdb (the app pool) and wrapping them with
// master.
func NewService(gdb *gorm.DB, master Master, opts ...Option) *Service {
	s := &Service{
		db:           gdb,
		master:       master,
		cache:        newKeyCache(DefaultCacheTTL),
		now:          func() time.Time { return time.Now().UTC() },
		reencrypters: map[string]Reencrypter{},
	}
	for _, o := range opts {
		o(s)
	}
	// No pool: this client is only ever given the caller's transaction (InsertTx).
	jobs, err := river.NewClient(riverdatabasesql.New(nil), &river.Config{Schema: db.Schema})
	if err != nil {
		panic(fmt.Sprintf("keys: river insert client: %v", err)) // the configuration is constant
	}
	s.jobs = jobs
	return s
}

// keysetTemplate is the key type of every tenant key: AES-256-GCM with tink's 5-byte prefix
// naming the key id, so a keyset with several keys finds the right one to decrypt.
var keysetTemplate = aead.AES256GCMKeyTemplate

// wrapContext binds a wrapped keyset to its tenant.
func wrapContext(tenantID int64) []byte {
	return []byte("tenantry/tenant_keysets/" + strconv.FormatInt(tenantID, 10))
}

func (s *Service) wrap(h *keyset.Handle, tenantID int64) ([]byte, error) {
	var buf bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&buf), s.master, wrapContext(tenantID)); err != nil {
		return nil, fmt.Errorf("keys: wrap keyset of tenant %d: %w", tenantID, err)
	}
	return buf.Bytes(), nil
}

func (s *Service) unwrap(encrypted []byte, tenantID int64) (*keyset.Handle, error) {
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(encrypted)), s.master, wrapContext(tenantID))
	if err != nil {
		return nil, fmt.Errorf("%w: tenant %d: %v", ErrUnwrap, tenantID, err)
	}
	return h, nil
}

// keyIDs lists h's key ids, primary first, then ascending.
func keyIDs(h *keyset.Handle) (primary uint32, ids int64Array) {
	info := h.KeysetInfo()
	primary = info.GetPrimaryKeyId()
	ids = int64Array{int64(primary)}
	var rest []int64
	for _, k := range info.GetKeyInfo() {
		if k.GetKeyId() != primary {
			rest = append(rest, int64(k.GetKeyId()))
		}
	}
	slices.Sort(rest)
	return primary, append(ids, rest...)
}

func tenantSlug(tx *gorm.DB, tenantID int64) (string, error) {
	var slug string
	err := tx.Raw("SELECT slug FROM tenantry.tenants WHERE id = ?", tenantID).Row().Scan(&slug)
	if errors.Is(err, sql.ErrNoRows) {
		return "", fmt.Errorf("%w: %d", ErrTenantNotFound, tenantID)
	}
	return slug, err
}

// Create gives the tenant a new keyset with one AES-256-GCM key, inside tx (the provisioning
// transaction; nil runs its own). It is idempotent: a tenant that has a keyset keeps it, so a
// retried provisioning never replaces keys that already encrypt data. A tenant whose keyset was
// destroyed gets ErrKeysetDestroyed.
func (s *Service) Create(ctx context.Context, tx *gorm.DB, tenantID int64) error {
	if tx == nil {
		return s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return s.Create(ctx, tx, tenantID) })
	}
	tx = tx.WithContext(ctx)
	slug, err := tenantSlug(tx, tenantID)
	if err != nil {
		return err
	}
	h, err := keyset.NewHandle(keysetTemplate())
	if err != nil {
		return fmt.Errorf("keys: new keyset: %w", err)
	}
	wrapped, err := s.wrap(h, tenantID)
	if err != nil {
		return err
	}
	primary, ids := keyIDs(h)
	row := keysetRow{TenantID: tenantID, EncryptedKeyset: wrapped, PrimaryKeyID: int64(primary), KeyIDs: ids, CreatedAt: s.now()}
	res := tx.Clauses(clause.OnConflict{DoNothing: true}).Create(&row)
	if res.Error != nil {
		return fmt.Errorf("keys: create keyset of tenant %d: %w", tenantID, res.Error)
	}
	if res.RowsAffected == 0 { // kept: it may already encrypt data
		var existing keysetRow
		if err := tx.Select("destroyed_at").Where("tenant_id = ?", tenantID).Take(&existing).Error; err != nil {
			return fmt.Errorf("keys: read keyset of tenant %d: %w", tenantID, err)
		}
		if existing.DestroyedAt != nil {
			return fmt.Errorf("keys: create keyset of tenant %d: %w", tenantID, ErrKeysetDestroyed)
		}
		return nil
	}
	return audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: "system:keys", Action: "tenant_key.created", Target: slug,
		Detail: audit.Detail(map[string]any{"primary_key_id": primary, "key_type": "AES256_GCM"})})
}

// load returns the tenant's keys, from the cache unless fresh is asked for.
func (s *Service) load(ctx context.Context, tenantID int64, fresh bool) (*tenantKeys, error) {
	if !fresh {
		if k, ok := s.cache.get(tenantID, s.now()); ok {
			return k, nil
		}
	}
	gen := s.cache.generation()
	var row keysetRow
	err := s.db.WithContext(ctx).Select("encrypted_keyset", "destroyed_at").Where("tenant_id = ?", tenantID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return nil, fmt.Errorf("%w: tenant %d", ErrNoKeyset, tenantID)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: read keyset of tenant %d: %w", tenantID, err)
	}
	k := &tenantKeys{fresh: true}
	if row.DestroyedAt != nil {
		k.destroyed = true
	} else {
		h, err := s.unwrap(row.EncryptedKeyset, tenantID)
		if err != nil {
			return nil, err
		}
		if k.aead, err = aead.New(h); err != nil {
			return nil, fmt.Errorf("keys: keyset of tenant %d: %w", tenantID, err)
		}
		primary, ids := keyIDs(h)
		k.primary, k.keyIDs = primary, map[uint32]bool{}
		for _, id := range ids {
			k.keyIDs[uint32(id)] = true
		}
	}
	s.cache.store(tenantID, k, gen, s.now())
	return k, nil
}

// live is load refusing a destroyed keyset.
func (s *Service) live(ctx context.Context, tenantID int64, fresh bool) (*tenantKeys, error) {
	k, err := s.load(ctx, tenantID, fresh)
	if err != nil {
		return nil, err
	}
	if k.destroyed {
		return nil, fmt.Errorf("%w: tenant %d", ErrKeysetDestroyed, tenantID)
	}
	return k, nil
}

// Encrypt encrypts plaintext under the tenant's primary key. associatedData is authenticated
// but not encrypted: pass what the ciphertext belongs to (table, row id, column) so that it
// cannot be moved to another place and still decrypt. The same associatedData is needed to
// decrypt.
func (s *Service) Encrypt(ctx context.Context, tenantID int64, plaintext, associatedData []byte) ([]byte, error) {
	k, err := s.live(ctx, tenantID, false)
	if err != nil {
		return nil, err
	}
	ct, err := k.aead.Encrypt(plaintext, associatedData)
	if err != nil {
		return nil, fmt.Errorf("keys: encrypt for tenant %d: %w", tenantID, err)
	}
	return ct, nil
}

// Decrypt decrypts a ciphertext of the tenant's made by Encrypt with the same associatedData,
// under whichever of the tenant's keys made it. It returns ErrDecrypt for another tenant's
// ciphertext, other associated data or an altered ciphertext, and ErrKeysetDestroyed once the
// tenant's keyset is destroyed.
func (s *Service) Decrypt(ctx context.Context, tenantID int64, ciphertext, associatedData []byte) ([]byte, error) {
	pt, _, err := s.decrypt(ctx, tenantID, ciphertext, associatedData)
	return pt, err
}

func (s *Service) decrypt(ctx context.Context, tenantID int64, ciphertext, associatedData []byte) ([]byte, *tenantKeys, error) {
	k, err := s.live(ctx, tenantID, false)
	if err != nil {
		return nil, nil, err
	}
	// A key id the cached keyset lacks: another process rotated; read the keyset again.
	if id, ok := CiphertextKeyID(ciphertext); ok && !k.fresh && !k.keyIDs[id] {
		if k, err = s.live(ctx, tenantID, true); err != nil {
			return nil, nil, err
		}
	}
	pt, err := k.aead.Decrypt(ciphertext, associatedData)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: tenant %d", ErrDecrypt, tenantID)
	}
	return pt, k, nil
}

// CiphertextKeyID returns the id of the tenant key that made ciphertext, read from tink's
// prefix (it is not authenticated until the ciphertext decrypts).
func CiphertextKeyID(ciphertext []byte) (uint32, bool) {
	const tinkStartByte, prefixSize = 0x01, 5
	if len(ciphertext) < prefixSize || ciphertext[0] != tinkStartByte {
		return 0, false
	}
	return binary.BigEndian.Uint32(ciphertext[1:prefixSize]), true
}

// Status is what the admin UI shows about a tenant's keys. It holds no key material.
type Status struct {
	TenantID     int64
	PrimaryKeyID uint32
	// KeyIDs lists every key in the keyset, primary first; they remain as evidence after Destroy.
	KeyIDs      []uint32
	CreatedAt   time.Time
	RotatedAt   *time.Time
	DestroyedAt *time.Time
	// LatestRotation is nil when the keyset was never rotated.
	LatestRotation *Rotation
}

// Destroyed reports whether the keyset was crypto-shredded.
func (st Status) Destroyed() bool { return st.DestroyedAt != nil }

// Status returns the tenant's key ids, dates and the progress of its latest rotation.
func (s *Service) Status(ctx context.Context, tenantID int64) (Status, error) {
	gdb := s.db.WithContext(ctx)
	var row keysetRow
	err := gdb.Omit("encrypted_keyset").Where("tenant_id = ?", tenantID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return Status{}, fmt.Errorf("%w: tenant %d", ErrNoKeyset, tenantID)
	}
	if err != nil {
		return Status{}, err
	}
	st := Status{TenantID: tenantID, PrimaryKeyID: uint32(row.PrimaryKeyID), CreatedAt: row.CreatedAt,
		RotatedAt: row.RotatedAt, DestroyedAt: row.DestroyedAt}
	for _, id := range row.KeyIDs {
		st.KeyIDs = append(st.KeyIDs, uint32(id))
	}
	var r Rotation
	err = gdb.Where("tenant_id = ?", tenantID).Order("id DESC").Take(&r).Error
	switch {
	case err == nil:
		st.LatestRotation = &r
	case !errors.Is(err, gorm.ErrRecordNotFound):
		return Status{}, err
	}
	return st, nil
}

// lockKeyset reads the tenant's keyset row FOR UPDATE inside tx.
func lockKeyset(tx *gorm.DB, tenantID int64) (keysetRow, error) {
	var row keysetRow
	err := tx.Clauses(clause.Locking{Strength: "UPDATE"}).Where("tenant_id = ?", tenantID).Take(&row).Error
	if errors.Is(err, gorm.ErrRecordNotFound) {
		return row, fmt.Errorf("%w: tenant %d", ErrNoKeyset, tenantID)
	}
	return row, err
}

// Destroy crypto-shreds the tenant's data: it erases the tenant's keyset, so that every
// ciphertext made with it, in the database, in exports or in backups of tenant data, can never
// be decrypted again, by anyone, master key or not. The row stays (key ids, dates) as evidence,
// and unfinished rotations are marked failed. Destroying a destroyed keyset does nothing.
//
// The erased bytes may survive for a while in PostgreSQL's dead tuples and WAL, and for as long
// as they are kept in backups of the control plane; those copies are still wrapped by the master
// key. Other processes stop using a cached copy within their cache TTL (see DefaultCacheTTL).
func (s *Service) Destroy(ctx context.Context, actor string, tenantID int64) error {
	var destroyed bool
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		row, err := lockKeyset(tx, tenantID)
		if err != nil {
			return err
		}
		if row.DestroyedAt != nil {
			return nil
		}
		slug, err := tenantSlug(tx, tenantID)
		if err != nil {
			return err
		}
		err = tx.Model(&keysetRow{}).Where("tenant_id = ?", tenantID).
			Updates(map[string]any{"encrypted_keyset": nil, "destroyed_at": s.now()}).Error
		if err != nil {
			return fmt.Errorf("keys: destroy keyset of tenant %d: %w", tenantID, err)
		}
		err = tx.Model(&Rotation{}).Where("tenant_id = ? AND finished_at IS NULL", tenantID).
			Update("error", "keyset destroyed").Error
		if err != nil {
			return err
		}
		destroyed = true
		return audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "tenant_key.destroyed", Target: slug,
			Detail: audit.Detail(map[string]any{"key_ids": row.KeyIDs, "primary_key_id": row.PrimaryKeyID})})
	})
	if destroyed {
		s.cache.invalidate(tenantID)
	}
	return err
}
