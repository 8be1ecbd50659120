package keys

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"

	"github.com/riverqueue/river"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
)

// Rewrap re-encrypts one of a tenant's ciphertexts under the tenant's current primary key,
// with the same associated data it was made with. When the ciphertext already is under the
// primary key it returns ciphertext itself, so a Reencrypter may skip the write when the result
// is bytes.Equal to its input. It fails with ErrDecrypt for a ciphertext that does not decrypt
// and ErrKeysetDestroyed once the keyset is destroyed. It is safe for concurrent use.
type Rewrap func(ciphertext, associatedData []byte) ([]byte, error)

// Reencrypter is implemented by each owner of data encrypted with tenant keys (settings secrets,
// integration credentials, ...) and registered with Service.RegisterReencrypter, so that a
// rotation can move the tenant's data to the new primary key.
type Reencrypter interface {
	// Count returns how many of the tenant's items the owner holds encrypted, for progress.
	Count(ctx context.Context, tenantID int64) (int, error)
	// Reencrypt passes each of the tenant's ciphertexts through rewrap and stores the result in
	// place of the old one, in batches, calling progress with the number of items done so far
	// after each batch commits. It stops and returns progress's error when progress fails (the
	// keyset was destroyed, the job was cancelled). It must be safe to run again from the start
	// after a failure: River retries the job.
	Reencrypt(ctx context.Context, tenantID int64, rewrap Rewrap, progress func(done int) error) error
}

// RegisterReencrypter adds the owner of some encrypted data under name (shown in rotation
// errors). Register every owner when the server is wired, before jobs run.
func (s *Service) RegisterReencrypter(name string, r Reencrypter) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, dup := s.reencrypters[name]; dup {
		panic("keys: reencrypter registered twice: " + name)
	}
	s.reencrypters[name] = r
}

// Rotate adds a new AES-256-GCM key to the tenant's keyset and makes it the primary key: every
// later Encrypt uses it, while the older keys stay to decrypt what they made. In the same
// transaction it records the rotation, the audit event and the River job (RotateArgs) that
// re-encrypts the tenant's data under the new key, so that none of them exists without the
// others. The job is scheduled one cache TTL later, when every process encrypts with the new key.
func (s *Service) Rotate(ctx context.Context, actor string, tenantID int64) (int64, error) {
	var rotation Rotation
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		row, err := lockKeyset(tx, tenantID)
		if err != nil {
			return err
		}
		if row.DestroyedAt != nil {
			return fmt.Errorf("%w: tenant %d", ErrKeysetDestroyed, tenantID)
		}
		slug, err := tenantSlug(tx, tenantID)
		if err != nil {
			return err
		}
		h, err := s.unwrap(row.EncryptedKeyset, tenantID)
		if err != nil {
			return err
		}
		m := keyset.NewManagerFromHandle(h)
		newID, err := m.Add(keysetTemplate())
		if err == nil {
			err = m.SetPrimary(newID)
		}
		if err == nil {
			h, err = m.Handle()
		}
		if err != nil {
			return fmt.Errorf("keys: add key for tenant %d: %w", tenantID, err)
		}
		wrapped, err := s.wrap(h, tenantID)
		if err != nil {
			return err
		}
		primary, ids := keyIDs(h)
		now := s.now()
		err = tx.Model(&keysetRow{}).Where("tenant_id = ?", tenantID).Updates(map[string]any{
			"encrypted_keyset": wrapped, "primary_key_id": int64(primary), "key_ids": ids, "rotated_at": now,
		}).Error
		if err != nil {
			return fmt.Errorf("keys: store rotated keyset of tenant %d: %w", tenantID, err)
		}
		rotation = Rotation{TenantID: tenantID, StartedAt: now, NewPrimaryKeyID: primary}
		if err := tx.Create(&rotation).Error; err != nil {
			return fmt.Errorf("keys: record rotation of tenant %d: %w", tenantID, err)
		}
		err = audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "tenant_key.rotated", Target: slug,
			Detail: audit.Detail(map[string]any{"rotation_id": rotation.ID, "primary_key_id": primary,
				"previous_primary_key_id": row.PrimaryKeyID, "key_ids": ids})})
		if err != nil {
			return err
		}
		sqlTx, err := db.SQLTx(tx)
		if err != nil {
			return err
		}
		opts := &river.InsertOpts{}
		if s.cache.ttl > 0 {
			opts.ScheduledAt = now.Add(s.cache.ttl)
		}
		if _, err := s.jobs.InsertTx(ctx, sqlTx, RotateArgs{TenantID: tenantID, RotationID: rotation.ID}, opts); err != nil {
			return fmt.Errorf("keys: enqueue re-encryption for tenant %d: %w", tenantID, err)
		}
		return nil
	})
	s.cache.invalidate(tenantID)
	if err != nil {
		return 0, err
	}
	return rotation.ID, nil
}

// maxErrorText bounds what a failed re-encryption stores in key_rotations.error.
const maxErrorText = 1000

// reencrypt runs a rotation's re-encryption: it counts the items of every registered
// Reencrypter, then walks them, recording progress, and marks the rotation finished. A failure
// is recorded and returned so that River retries; a destroyed keyset cancels the job.
func (s *Service) reencrypt(ctx context.Context, args RotateArgs) error {
	gdb := s.db.WithContext(ctx)
	var r Rotation
	err := gdb.Take(&r, args.RotationID).Error
	if errors.Is(err, gorm.ErrRecordNotFound) || (err == nil && r.TenantID != args.TenantID) {
		return river.JobCancel(fmt.Errorf("keys: no rotation %d for tenant %d", args.RotationID, args.TenantID))
	}
	if err != nil {
		return err
	}
	if r.FinishedAt != nil {
		return nil
	}
	fail := func(err error) error {
		msg := err.Error()
		if len(msg) > maxErrorText {
			msg = msg[:maxErrorText]
		}
		// Recorded even when ctx was cancelled (job timeout), so the UI shows why.
		if uerr := s.db.WithContext(context.WithoutCancel(ctx)).Model(&Rotation{}).Where("id = ?", r.ID).
			Update("error", msg).Error; uerr != nil {
			return errors.Join(err, uerr)
		}
		if errors.Is(err, ErrKeysetDestroyed) {
			return river.JobCancel(err)
		}
		return err
	}

	// Read the keyset afresh: this process's cache may predate the rotation.
	k, err := s.live(ctx, r.TenantID, true)
	if err != nil {
		return fail(err)
	}
	var current atomic.Pointer[tenantKeys]
	current.Store(k)
	rewrap := func(ciphertext, associatedData []byte) ([]byte, error) {
		k := current.Load()
		id, prefixed := CiphertextKeyID(ciphertext)
		if prefixed && !k.keyIDs[id] { // rotated again since the job started
			fresh, err := s.live(ctx, r.TenantID, true)
			if err != nil {
				return nil, err
			}
			current.Store(fresh)
			k = fresh
		}
		pt, err := k.aead.Decrypt(ciphertext, associatedData)
		if err != nil {
			return nil, fmt.Errorf("%w: tenant %d", ErrDecrypt, r.TenantID)
		}
		if prefixed && id == k.primary {
			return ciphertext, nil
		}
		return k.aead.Encrypt(pt, associatedData)
	}

	s.mu.RLock()
	names := make([]string, 0, len(s.reencrypters))
	owners := make(map[string]Reencrypter, len(s.reencrypters))
	for name, re := range s.reencrypters {
		names = append(names, name)
		owners[name] = re
	}
	s.mu.RUnlock()
	slices.Sort(names)

	total := 0
	for _, name := range names {
		n, err := owners[name].Count(ctx, r.TenantID)
		if err != nil {
			return fail(fmt.Errorf("%s: count: %w", name, err))
		}
		total += n
	}
	err = gdb.Model(&Rotation{}).Where("id = ?", r.ID).
		Updates(map[string]any{"items_total": total, "items_done": 0, "error": nil}).Error
	if err != nil {
		return err
	}

	done := 0
	for _, name := range names {
		base, last := done, 0
		progress := func(n int) error {
			last = n
			if err := gdb.Model(&Rotation{}).Where("id = ?", r.ID).Update("items_done", base+n).Error; err != nil {
				return err
			}
			var destroyed bool
			if err := gdb.Raw("SELECT destroyed_at IS NOT NULL FROM tenantry.tenant_keysets WHERE tenant_id = ?", r.TenantID).
				Row().Scan(&destroyed); err != nil {
				return err
			}
			if destroyed {
				return fmt.Errorf("%w: tenant %d", ErrKeysetDestroyed, r.TenantID)
			}
			return nil
		}
		if err := owners[name].Reencrypt(ctx, r.TenantID, rewrap, progress); err != nil {
			return fail(fmt.Errorf("%s: %w", name, err))
		}
		done = base + last
	}
	// Finished means every item the owners hold is under the new key, whatever they reported.
	done = max(done, total)
	return gdb.Model(&Rotation{}).Where("id = ?", r.ID).Updates(map[string]any{
		"finished_at": s.now(), "items_done": done, "items_total": done, "error": nil,
	}).Error
}
