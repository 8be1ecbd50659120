package credentials_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"os"
	"testing"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tenantry/tenantry/internal/credentials"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/validation"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

type bundle struct {
	d     *db.DB
	keys  *keys.Service
	creds *credentials.Service
}

func setup(t *testing.T) *bundle {
	t.Helper()
	d := dbtest.Open(t)
	mk := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(mk)
	master, err := keys.NewLocalMaster(mk)
	if err != nil {
		t.Fatal(err)
	}
	k := keys.NewService(d.App, master, keys.WithCacheTTL(0))
	c := credentials.NewService(d, k)
	k.RegisterReencrypter("credentials", c)
	return &bundle{d: d, keys: k, creds: c}
}

func (b *bundle) tenant(t *testing.T, slug string) int64 {
	t.Helper()
	ctx := context.Background()
	var id int64
	if err := b.d.OwnerPool.QueryRow(ctx, "INSERT INTO tenantry.tenants (slug, name, plan_key) VALUES ($1, $1, 'free') RETURNING id", slug).Scan(&id); err != nil {
		t.Fatal(err)
	}
	if err := b.d.EnsureTenantPlane(ctx, id, dbtest.Logger(t)); err != nil {
		t.Fatal(err)
	}
	if err := b.keys.Create(ctx, nil, id); err != nil {
		t.Fatal(err)
	}
	return id
}

const secret = "sk_live_51Hxyz-very-secret-token"

func TestSetListReveal(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	a, other := b.tenant(t, "cred-a"), b.tenant(t, "cred-b")
	if err := b.creds.Set(ctx, "ops@example.com", a, " Stripe.API_Key ", secret); err != nil {
		t.Fatal(err)
	}
	list, err := b.creds.List(ctx, a)
	if err != nil || len(list) != 1 || list[0].Name != "stripe.api_key" || list[0].SetBy != "ops@example.com" {
		t.Fatalf("list = %+v, %v", list, err)
	}
	got, err := b.creds.Reveal(ctx, a, "stripe.api_key")
	if err != nil || string(got) != secret {
		t.Fatalf("reveal = %q, %v", got, err)
	}
	var stored []byte
	if err := b.d.OwnerPool.QueryRow(ctx, "SELECT ciphertext FROM "+db.TenantSchema(a)+".credentials").Scan(&stored); err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(stored, []byte(secret)) || bytes.Contains(stored, []byte("very-secret")) {
		t.Fatal("the credential is stored in clear")
	}
	if list, _ := b.creds.List(ctx, other); len(list) != 0 {
		t.Fatalf("another tenant lists %d credentials", len(list))
	}
	if _, err := b.creds.Reveal(ctx, other, "stripe.api_key"); !errors.Is(err, credentials.ErrNotFound) {
		t.Fatalf("another tenant reveals: %v", err)
	}
	// Moving the ciphertext to the other tenant's table does not make it readable there.
	if _, err := b.d.OwnerPool.Exec(ctx, "INSERT INTO "+db.TenantSchema(other)+".credentials (name, ciphertext, set_by) VALUES ('stripe.api_key', $1, 'mallory')", stored); err != nil {
		t.Fatal(err)
	}
	if _, err := b.creds.Reveal(ctx, other, "stripe.api_key"); err == nil {
		t.Fatal("a ciphertext copied to another tenant decrypted")
	}
	for field, in := range map[string][2]string{"name": {"Bad Name!", "x"}, "value": {"ok.name", ""}} {
		if err := b.creds.Set(ctx, "ops", a, in[0], in[1]); validation.Fields(err)[field] == "" {
			t.Errorf("%s: %v", field, err)
		}
	}
}

func TestRotationReencryptsAndShreddingDestroys(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	a := b.tenant(t, "cred-rot")
	for _, name := range []string{"one", "two", "three"} {
		if err := b.creds.Set(ctx, "ops", a, name, secret+name); err != nil {
			t.Fatal(err)
		}
	}
	before, _ := b.keys.Status(ctx, a)
	rotationID, err := b.keys.Rotate(ctx, "ops", a)
	if err != nil {
		t.Fatal(err)
	}
	job := &river.Job[keys.RotateArgs]{JobRow: &rivertype.JobRow{ID: 1}, Args: keys.RotateArgs{TenantID: a, RotationID: rotationID}}
	if err := keys.NewRotateWorker(b.keys).Work(ctx, job); err != nil {
		t.Fatal(err)
	}
	after, _ := b.keys.Status(ctx, a)
	if after.PrimaryKeyID == before.PrimaryKeyID || after.LatestRotation == nil || after.LatestRotation.ItemsDone != 3 || after.LatestRotation.FinishedAt == nil {
		t.Fatalf("rotation: before %+v after %+v", before, after.LatestRotation)
	}
	rows, err := b.d.OwnerPool.Query(ctx, "SELECT ciphertext FROM "+db.TenantSchema(a)+".credentials")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var ct []byte
		_ = rows.Scan(&ct)
		if id, _ := keys.CiphertextKeyID(ct); id != after.PrimaryKeyID {
			t.Errorf("a credential is still under key %d, primary is %d", id, after.PrimaryKeyID)
		}
	}
	rows.Close()
	if got, err := b.creds.Reveal(ctx, a, "two"); err != nil || string(got) != secret+"two" {
		t.Fatalf("after rotation: %q, %v", got, err)
	}

	if err := b.keys.Destroy(ctx, "ops", a); err != nil {
		t.Fatal(err)
	}
	if _, err := b.creds.Reveal(ctx, a, "two"); !errors.Is(err, keys.ErrKeysetDestroyed) {
		t.Fatalf("after crypto-shredding: %v, want ErrKeysetDestroyed", err)
	}
}
