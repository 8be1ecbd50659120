package keys_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/keys"
)

func TestDestroyShredsTheKeyset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, tb := setup(t) // cache on: Destroy must take effect at once anyway
	tenant := newKeyedTenant(t, svc, tb.d)
	rotate(t, svc, tenant)
	keyIDs := status(t, svc, tenant).KeyIDs
	ct := encrypt(t, svc, tenant, "to be shredded", "ad")
	pending := rotate(t, svc, tenant)
	decrypt(t, svc, tenant, ct, "ad") // caches the keyset on this process

	if err := svc.Destroy(ctx, "admin@example.com", tenant); err != nil {
		t.Fatal(err)
	}

	t.Run("no one can decrypt", func(t *testing.T) {
		sameMaster := keys.NewService(tb.d.App, tb.master) // another process, same master key
		for name, s := range map[string]*keys.Service{"this process": svc, "another process": sameMaster} {
			if _, err := s.Decrypt(ctx, tenant, ct, []byte("ad")); !errors.Is(err, keys.ErrKeysetDestroyed) {
				t.Errorf("%s: Decrypt after Destroy: %v, want ErrKeysetDestroyed", name, err)
			}
			if _, err := s.Encrypt(ctx, tenant, []byte("new"), nil); !errors.Is(err, keys.ErrKeysetDestroyed) {
				t.Errorf("%s: Encrypt after Destroy: %v, want ErrKeysetDestroyed", name, err)
			}
		}
	})

	t.Run("the row holds no key material and stays as evidence", func(t *testing.T) {
		var (
			stored    []byte
			isNull    bool
			destroyed *time.Time
			ids       []int64
		)
		err := tb.d.AppPool.QueryRow(ctx, `SELECT encrypted_keyset, encrypted_keyset IS NULL, destroyed_at, key_ids
			FROM tenantry.tenant_keysets WHERE tenant_id = $1`, tenant).Scan(&stored, &isNull, &destroyed, &ids)
		if err != nil {
			t.Fatal(err)
		}
		if !isNull || len(stored) != 0 || destroyed == nil {
			t.Fatalf("destroyed row: %d keyset bytes, destroyed_at %v", len(stored), destroyed)
		}
		st := status(t, svc, tenant)
		if !st.Destroyed() || len(st.KeyIDs) != 3 || !slices.Contains(st.KeyIDs, keyIDs[0]) || !slices.Contains(st.KeyIDs, keyIDs[1]) {
			t.Fatalf("status after destroy = %+v", st)
		}
	})

	t.Run("the database refuses to bring it back or drop the evidence", func(t *testing.T) {
		_, err := tb.d.OwnerPool.Exec(ctx, `UPDATE tenantry.tenant_keysets SET encrypted_keyset = '\x0102', destroyed_at = NULL
			WHERE tenant_id = $1`, tenant)
		if err == nil {
			t.Fatal("a destroyed keyset row could be written back")
		}
		if _, err := tb.d.AppPool.Exec(ctx, "DELETE FROM tenantry.tenant_keysets WHERE tenant_id = $1", tenant); err == nil {
			t.Fatal("the app role could delete a keyset row")
		}
	})

	t.Run("nothing else can be done with it", func(t *testing.T) {
		if _, err := svc.Rotate(ctx, "admin@example.com", tenant); !errors.Is(err, keys.ErrKeysetDestroyed) {
			t.Fatalf("Rotate after Destroy: %v", err)
		}
		if err := svc.Create(ctx, nil, tenant); !errors.Is(err, keys.ErrKeysetDestroyed) {
			t.Fatalf("Create after Destroy: %v", err)
		}
		if err := svc.Destroy(ctx, "admin@example.com", tenant); err != nil {
			t.Fatalf("second Destroy: %v, want nil (idempotent)", err)
		}
	})

	t.Run("the pending re-encryption is cancelled", func(t *testing.T) {
		err := work(ctx, svc, tenant, pending)
		if !errors.Is(err, keys.ErrKeysetDestroyed) {
			t.Fatalf("work after Destroy: %v, want ErrKeysetDestroyed (job cancelled)", err)
		}
		r := status(t, svc, tenant).LatestRotation
		if r.ID != pending || r.FinishedAt != nil || r.Error == nil {
			t.Fatalf("pending rotation after destroy = %+v", r)
		}
	})

	t.Run("audited once", func(t *testing.T) {
		want := []string{"tenant_key.created", "tenant_key.rotated", "tenant_key.rotated", "tenant_key.destroyed"}
		if got := auditActions(t, tb.d, tenant); !slices.Equal(got, want) {
			t.Fatalf("audit = %v, want %v", got, want)
		}
	})
}

// Other processes stop using their cached copy within their cache TTL.
func TestDestroySeenByAnotherProcessWithinTTL(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	a, tb := setup(t)
	const ttl = 200 * time.Millisecond
	b := keys.NewService(tb.d.App, tb.master, keys.WithCacheTTL(ttl))
	tenant := newKeyedTenant(t, a, tb.d)
	ct := encrypt(t, b, tenant, "x", "ad") // b caches the keyset

	if err := a.Destroy(ctx, "admin@example.com", tenant); err != nil {
		t.Fatal(err)
	}
	time.Sleep(ttl + 50*time.Millisecond)
	if _, err := b.Decrypt(ctx, tenant, ct, []byte("ad")); !errors.Is(err, keys.ErrKeysetDestroyed) {
		t.Fatalf("b one TTL after Destroy: %v, want ErrKeysetDestroyed", err)
	}
}

// The re-encryption stops when the keyset is destroyed while it runs.
func TestDestroyDuringReencryption(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, tb := setup(t)
	tenant := newKeyedTenant(t, svc, tb.d)
	owner := &memOwner{}
	svc.RegisterReencrypter("settings", owner)
	owner.add(t, svc, tenant, 6)
	rotation := rotate(t, svc, tenant)
	other := keys.NewService(tb.d.App, tb.master)
	batches := 0
	owner.onBatch = func(int) {
		batches++
		if batches == 1 {
			if err := other.Destroy(ctx, "admin@example.com", tenant); err != nil {
				t.Error(err)
			}
		}
	}
	if err := work(ctx, svc, tenant, rotation); !errors.Is(err, keys.ErrKeysetDestroyed) {
		t.Fatalf("work: %v, want ErrKeysetDestroyed", err)
	}
	if batches != 1 {
		t.Fatalf("%d batches ran, want the walk to stop after the first", batches)
	}
}
