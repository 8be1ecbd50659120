package keys_test

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"

	"github.com/tink-crypto/tink-go/v2/insecurecleartextkeyset"
	"github.com/tink-crypto/tink-go/v2/keyset"
	aesgcmpb "github.com/tink-crypto/tink-go/v2/proto/aes_gcm_go_proto"
	"google.golang.org/protobuf/proto"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/keys"
)

func TestRoundTrip(t *testing.T) {
	t.Parallel()
	svc, tb := setup(t)
	tenant := newKeyedTenant(t, svc, tb.d)
	primary := status(t, svc, tenant).PrimaryKeyID

	for _, tc := range []struct {
		name      string
		plaintext []byte
	}{
		{"empty", []byte{}},
		{"short", []byte("s3cret-api-token")},
		{"1KiB", bytes.Repeat([]byte("0123456789abcdef"), 64)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ad := []byte("settings/42/smtp_password")
			ct, err := svc.Encrypt(context.Background(), tenant, tc.plaintext, ad)
			if err != nil {
				t.Fatal(err)
			}
			if len(tc.plaintext) > 0 && bytes.Contains(ct, tc.plaintext) {
				t.Fatal("ciphertext contains the plaintext")
			}
			if id, ok := keys.CiphertextKeyID(ct); !ok || id != primary {
				t.Fatalf("ciphertext key id = %d (%v), want primary %d", id, ok, primary)
			}
			again, _ := svc.Encrypt(context.Background(), tenant, tc.plaintext, ad)
			if bytes.Equal(ct, again) {
				t.Fatal("two encryptions of the same plaintext are equal: not randomised")
			}
			pt, err := svc.Decrypt(context.Background(), tenant, ct, ad)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(pt, tc.plaintext) {
				t.Fatalf("round trip gave %q, want %q", pt, tc.plaintext)
			}
		})
	}
}

func TestCiphertextBelongsToItsTenantAndPlace(t *testing.T) {
	t.Parallel()
	svc, tb := setup(t)
	a, b := newKeyedTenant(t, svc, tb.d), newKeyedTenant(t, svc, tb.d)
	ct := encrypt(t, svc, a, "tenant A's secret", "secrets/1")

	tampered := slices.Clone(ct)
	tampered[len(tampered)-1] ^= 1
	for _, tc := range []struct {
		name   string
		tenant int64
		ct     []byte
		ad     string
	}{
		{"other tenant", b, ct, "secrets/1"},
		{"other associated data", a, ct, "secrets/2"},
		{"no associated data", a, ct, ""},
		{"altered ciphertext", a, tampered, "secrets/1"},
		{"truncated ciphertext", a, ct[:10], "secrets/1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			pt, err := svc.Decrypt(context.Background(), tc.tenant, tc.ct, []byte(tc.ad))
			if !errors.Is(err, keys.ErrDecrypt) {
				t.Fatalf("Decrypt = %q, %v; want ErrDecrypt", pt, err)
			}
		})
	}
	if got := decrypt(t, svc, a, ct, "secrets/1"); got != "tenant A's secret" {
		t.Fatalf("the right tenant and place decrypt to %q", got)
	}
}

// storedKeyset reads a tenant's wrapped keyset as the database holds it.
func storedKeyset(t *testing.T, tb *testBundle, tenant int64) []byte {
	t.Helper()
	var b []byte
	if err := tb.d.AppPool.QueryRow(context.Background(),
		"SELECT encrypted_keyset FROM tenantry.tenant_keysets WHERE tenant_id = $1", tenant).Scan(&b); err != nil {
		t.Fatal(err)
	}
	return b
}

func TestStoredKeysetIsWrapped(t *testing.T) {
	t.Parallel()
	svc, tb := setup(t, keys.WithCacheTTL(0))
	tenant := newKeyedTenant(t, svc, tb.d)
	ct := encrypt(t, svc, tenant, "payload", "ad")
	stored := storedKeyset(t, tb, tenant)

	t.Run("no key material in the row", func(t *testing.T) {
		// Unwrap it the way the service does, to learn the raw AES key, then look for it.
		h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(stored)), tb.master, keys.WrapContext(tenant))
		if err != nil {
			t.Fatalf("unwrap with the right master key: %v", err)
		}
		material := insecurecleartextkeyset.KeysetMaterial(h)
		if len(material.GetKey()) != 1 {
			t.Fatalf("keyset has %d keys, want 1", len(material.GetKey()))
		}
		var k aesgcmpb.AesGcmKey
		if err := proto.Unmarshal(material.GetKey()[0].GetKeyData().GetValue(), &k); err != nil {
			t.Fatal(err)
		}
		if len(k.GetKeyValue()) != 32 {
			t.Fatalf("AES key is %d bytes, want 32", len(k.GetKeyValue()))
		}
		if bytes.Contains(stored, k.GetKeyValue()) {
			t.Fatal("the stored keyset contains the raw AES key")
		}
		if bytes.Contains(stored, material.GetKey()[0].GetKeyData().GetValue()) {
			t.Fatal("the stored keyset contains the serialised key")
		}
	})

	t.Run("another master key cannot unwrap it", func(t *testing.T) {
		other := keys.NewService(tb.d.App, newMaster(t))
		if _, err := other.Decrypt(context.Background(), tenant, ct, []byte("ad")); !errors.Is(err, keys.ErrUnwrap) {
			t.Fatalf("Decrypt with another master key: %v, want ErrUnwrap", err)
		}
		if _, err := other.Encrypt(context.Background(), tenant, []byte("x"), nil); !errors.Is(err, keys.ErrUnwrap) {
			t.Fatalf("Encrypt with another master key: %v, want ErrUnwrap", err)
		}
	})

	t.Run("a row copied to another tenant does not unwrap", func(t *testing.T) {
		victim := newKeyedTenant(t, svc, tb.d)
		_, err := tb.d.AppPool.Exec(context.Background(),
			"UPDATE tenantry.tenant_keysets SET encrypted_keyset = $1 WHERE tenant_id = $2", stored, victim)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := svc.Decrypt(context.Background(), victim, ct, []byte("ad")); !errors.Is(err, keys.ErrUnwrap) {
			t.Fatalf("Decrypt with a keyset copied from another tenant: %v, want ErrUnwrap", err)
		}
	})
}

func TestCreateIsIdempotent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, tb := setup(t)

	t.Run("a second create keeps the keyset", func(t *testing.T) {
		tenant := newKeyedTenant(t, svc, tb.d)
		before := storedKeyset(t, tb, tenant)
		ct := encrypt(t, svc, tenant, "kept", "ad")
		if err := svc.Create(ctx, nil, tenant); err != nil {
			t.Fatalf("second create: %v", err)
		}
		if !bytes.Equal(storedKeyset(t, tb, tenant), before) {
			t.Fatal("the second create replaced the keyset")
		}
		fresh := keys.NewService(tb.d.App, tb.master) // no cache
		if got := decrypt(t, fresh, tenant, ct, "ad"); got != "kept" {
			t.Fatalf("decrypt after a second create = %q", got)
		}
		if got := auditActions(t, tb.d, tenant); !slices.Equal(got, []string{"tenant_key.created"}) {
			t.Fatalf("audit = %v, want one tenant_key.created", got)
		}
	})

	t.Run("concurrent creates make one keyset", func(t *testing.T) {
		tenant := newTenant(t, tb.d)
		var wg sync.WaitGroup
		errs := make([]error, 4)
		for i := range errs {
			wg.Go(func() { errs[i] = svc.Create(ctx, nil, tenant) })
		}
		wg.Wait()
		for i, err := range errs {
			if err != nil {
				t.Fatalf("create %d: %v", i, err)
			}
		}
		if got := auditActions(t, tb.d, tenant); !slices.Equal(got, []string{"tenant_key.created"}) {
			t.Fatalf("audit = %v, want one tenant_key.created", got)
		}
	})

	t.Run("inside the caller's transaction", func(t *testing.T) {
		tenant := newTenant(t, tb.d)
		rollback := errors.New("provisioning failed")
		err := tb.d.App.Transaction(func(tx *gorm.DB) error {
			if err := svc.Create(ctx, tx, tenant); err != nil {
				return err
			}
			return rollback
		})
		if !errors.Is(err, rollback) {
			t.Fatal(err)
		}
		if _, err := svc.Status(ctx, tenant); !errors.Is(err, keys.ErrNoKeyset) {
			t.Fatalf("after rollback, Status: %v, want ErrNoKeyset", err)
		}
		if got := auditActions(t, tb.d, tenant); len(got) != 0 {
			t.Fatalf("after rollback, audit = %v, want none", got)
		}
	})

	t.Run("unknown tenant", func(t *testing.T) {
		if err := svc.Create(ctx, nil, 1<<40); !errors.Is(err, keys.ErrTenantNotFound) {
			t.Fatalf("Create for no tenant: %v, want ErrTenantNotFound", err)
		}
	})
}

func TestTenantWithoutKeyset(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, tb := setup(t)
	tenant := newTenant(t, tb.d)
	if _, err := svc.Encrypt(ctx, tenant, []byte("x"), nil); !errors.Is(err, keys.ErrNoKeyset) {
		t.Fatalf("Encrypt: %v, want ErrNoKeyset", err)
	}
	if _, err := svc.Decrypt(ctx, tenant, []byte("x"), nil); !errors.Is(err, keys.ErrNoKeyset) {
		t.Fatalf("Decrypt: %v, want ErrNoKeyset", err)
	}
	if _, err := svc.Status(ctx, tenant); !errors.Is(err, keys.ErrNoKeyset) {
		t.Fatalf("Status: %v, want ErrNoKeyset", err)
	}
	if _, err := svc.Rotate(ctx, "admin@example.com", tenant); !errors.Is(err, keys.ErrNoKeyset) {
		t.Fatalf("Rotate: %v, want ErrNoKeyset", err)
	}
}

func TestStatusOfNewKeyset(t *testing.T) {
	t.Parallel()
	svc, tb := setup(t)
	tenant := newKeyedTenant(t, svc, tb.d)
	st := status(t, svc, tenant)
	if len(st.KeyIDs) != 1 || st.KeyIDs[0] != st.PrimaryKeyID || st.PrimaryKeyID == 0 {
		t.Fatalf("key ids %v, primary %d: want one non-zero primary", st.KeyIDs, st.PrimaryKeyID)
	}
	if st.CreatedAt.IsZero() || st.RotatedAt != nil || st.DestroyedAt != nil || st.LatestRotation != nil || st.Destroyed() {
		t.Fatalf("status of a new keyset = %+v", st)
	}
}
