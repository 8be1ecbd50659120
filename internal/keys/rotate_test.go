package keys_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/rivertype"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/jobs"
	"github.com/tenantry/tenantry/internal/keys"
)

// secret is one encrypted item held by an owner of tenant data.
type secret struct {
	tenant    int64
	plaintext string
	ad        string
	ct        []byte
}

// memOwner is a Reencrypter over items in memory, rewriting them in batches of two.
type memOwner struct {
	mu      sync.Mutex
	items   []*secret
	writes  int
	fail    error
	onBatch func(done int) // after progress, for tests to look at the database
}

func (m *memOwner) add(t *testing.T, svc *keys.Service, tenant int64, n int) {
	for i := range n {
		s := &secret{tenant: tenant, plaintext: fmt.Sprintf("secret %d of %d", i, tenant), ad: "item/" + strconv.Itoa(len(m.items))}
		s.ct = encrypt(t, svc, tenant, s.plaintext, s.ad)
		m.items = append(m.items, s)
	}
}

func (m *memOwner) of(tenant int64) []*secret {
	var out []*secret
	for _, s := range m.items {
		if s.tenant == tenant {
			out = append(out, s)
		}
	}
	return out
}

func (m *memOwner) Count(_ context.Context, tenant int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.of(tenant)), nil
}

func (m *memOwner) Reencrypt(_ context.Context, tenant int64, rewrap keys.Rewrap, progress func(int) error) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.fail != nil {
		return m.fail
	}
	items := m.of(tenant)
	for start := 0; start < len(items); start += 2 {
		end := min(start+2, len(items))
		for _, s := range items[start:end] {
			out, err := rewrap(s.ct, []byte(s.ad))
			if err != nil {
				return err
			}
			if !bytes.Equal(out, s.ct) {
				s.ct = out
				m.writes++
			}
		}
		if err := progress(end); err != nil {
			return err
		}
		if m.onBatch != nil {
			m.onBatch(end)
		}
	}
	return nil
}

func work(ctx context.Context, svc *keys.Service, tenant, rotation int64) error {
	job := &river.Job[keys.RotateArgs]{JobRow: &rivertype.JobRow{}, Args: keys.RotateArgs{TenantID: tenant, RotationID: rotation}}
	return keys.NewRotateWorker(svc).Work(ctx, job)
}

func rotate(t *testing.T, svc *keys.Service, tenant int64) int64 {
	t.Helper()
	id, err := svc.Rotate(context.Background(), "admin@example.com", tenant)
	if err != nil {
		t.Fatalf("rotate: %v", err)
	}
	return id
}

func TestRotate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, tb := setup(t) // cache on: the rotation must show at once on this process anyway
	tenant := newKeyedTenant(t, svc, tb.d)
	before := status(t, svc, tenant)
	old := encrypt(t, svc, tenant, "before rotation", "ad")

	rotation := rotate(t, svc, tenant)

	after := status(t, svc, tenant)
	if after.PrimaryKeyID == before.PrimaryKeyID {
		t.Fatal("primary key id unchanged by rotation")
	}
	if !slices.Equal(after.KeyIDs, []uint32{after.PrimaryKeyID, before.PrimaryKeyID}) {
		t.Fatalf("key ids %v, want new primary %d then old %d", after.KeyIDs, after.PrimaryKeyID, before.PrimaryKeyID)
	}
	if after.RotatedAt == nil || after.LatestRotation == nil || after.LatestRotation.ID != rotation {
		t.Fatalf("status after rotation = %+v", after)
	}
	if r := after.LatestRotation; r.NewPrimaryKeyID != after.PrimaryKeyID || r.FinishedAt != nil || r.ItemsTotal != nil || r.ItemsDone != 0 {
		t.Fatalf("new rotation = %+v", r)
	}
	if got := decrypt(t, svc, tenant, old, "ad"); got != "before rotation" {
		t.Fatalf("old ciphertext decrypts to %q", got)
	}
	if id, _ := keys.CiphertextKeyID(encrypt(t, svc, tenant, "after", "ad")); id != after.PrimaryKeyID {
		t.Fatalf("new ciphertext under key %d, want the new primary %d", id, after.PrimaryKeyID)
	}
	var jobsEnqueued int
	err := tb.d.AppPool.QueryRow(ctx, `SELECT count(*) FROM tenantry.river_job
		WHERE kind = 'keys.rotate' AND (args->>'rotation_id')::bigint = $1 AND (args->>'tenant_id')::bigint = $2`,
		rotation, tenant).Scan(&jobsEnqueued)
	if err != nil {
		t.Fatal(err)
	}
	if jobsEnqueued != 1 {
		t.Fatalf("%d re-encryption jobs enqueued, want 1", jobsEnqueued)
	}
	if got := auditActions(t, tb.d, tenant); !slices.Equal(got, []string{"tenant_key.created", "tenant_key.rotated"}) {
		t.Fatalf("audit = %v", got)
	}
}

func TestReencryptionJob(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, tb := setup(t)
	tenant, other := newKeyedTenant(t, svc, tb.d), newKeyedTenant(t, svc, tb.d)
	settings, creds := &memOwner{}, &memOwner{}
	svc.RegisterReencrypter("settings", settings)
	svc.RegisterReencrypter("credentials", creds)
	settings.add(t, svc, tenant, 5)
	settings.add(t, svc, other, 2)
	creds.add(t, svc, tenant, 2)
	otherBefore := [][]byte{settings.of(other)[0].ct, settings.of(other)[1].ct}
	tenantBefore := map[*secret][]byte{}
	for _, s := range append(settings.of(tenant), creds.of(tenant)...) {
		tenantBefore[s] = s.ct
	}

	rotation := rotate(t, svc, tenant)
	primary := status(t, svc, tenant).PrimaryKeyID

	// Progress must be in the database while the job runs: owners are walked by name.
	var seen []int
	record := func(int) {
		var done int
		if err := tb.d.AppPool.QueryRow(ctx, "SELECT items_done FROM tenantry.key_rotations WHERE id = $1", rotation).Scan(&done); err != nil {
			t.Error(err)
		}
		seen = append(seen, done)
	}
	settings.onBatch, creds.onBatch = record, record

	if err := work(ctx, svc, tenant, rotation); err != nil {
		t.Fatalf("work: %v", err)
	}

	if want := []int{2, 4, 6, 7}; !slices.Equal(seen, want) { // credentials (2), then settings (5)
		t.Fatalf("items_done during the job = %v, want %v", seen, want)
	}
	for s, old := range tenantBefore {
		if bytes.Equal(s.ct, old) {
			t.Fatalf("item %q was not rewritten", s.ad)
		}
		if id, _ := keys.CiphertextKeyID(s.ct); id != primary {
			t.Fatalf("item %q under key %d, want the new primary %d", s.ad, id, primary)
		}
		if got := decrypt(t, svc, tenant, s.ct, s.ad); got != s.plaintext {
			t.Fatalf("item %q decrypts to %q, want %q", s.ad, got, s.plaintext)
		}
	}
	for i, s := range settings.of(other) {
		if !bytes.Equal(s.ct, otherBefore[i]) {
			t.Fatal("another tenant's item was rewritten")
		}
	}
	r := status(t, svc, tenant).LatestRotation
	if r.FinishedAt == nil || r.Error != nil || r.ItemsTotal == nil || *r.ItemsTotal != 7 || r.ItemsDone != 7 {
		t.Fatalf("finished rotation = %+v (total %v)", r, r.ItemsTotal)
	}

	t.Run("a finished rotation is not worked again", func(t *testing.T) {
		writes := settings.writes + creds.writes
		if err := work(ctx, svc, tenant, rotation); err != nil {
			t.Fatal(err)
		}
		if got := settings.writes + creds.writes; got != writes {
			t.Fatalf("%d writes after working a finished rotation again", got-writes)
		}
	})

	t.Run("items already under the primary key are left alone", func(t *testing.T) {
		again := rotate(t, svc, tenant)
		if err := work(ctx, svc, tenant, again); err != nil {
			t.Fatal(err)
		}
		writes := settings.writes + creds.writes
		// A later job for the same keyset (a retry, or a rotation worked twice) has nothing to do.
		if _, err := tb.d.AppPool.Exec(ctx, "UPDATE tenantry.key_rotations SET finished_at = NULL WHERE id = $1", again); err != nil {
			t.Fatal(err)
		}
		if err := work(ctx, svc, tenant, again); err != nil {
			t.Fatal(err)
		}
		if got := settings.writes + creds.writes; got != writes {
			t.Fatalf("%d items rewritten that were already under the primary key", got-writes)
		}
	})
}

func TestReencryptionFailureIsRecordedAndRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	svc, tb := setup(t)
	tenant := newKeyedTenant(t, svc, tb.d)
	owner := &memOwner{fail: errors.New("settings table locked")}
	svc.RegisterReencrypter("settings", owner)
	owner.add(t, svc, tenant, 3)
	rotation := rotate(t, svc, tenant)

	if err := work(ctx, svc, tenant, rotation); err == nil {
		t.Fatal("work succeeded though the owner failed")
	}
	r := status(t, svc, tenant).LatestRotation
	if r.FinishedAt != nil || r.Error == nil || *r.Error != "settings: settings table locked" {
		t.Fatalf("failed rotation = %+v", r)
	}

	owner.fail = nil // River retries the job
	if err := work(ctx, svc, tenant, rotation); err != nil {
		t.Fatalf("retry: %v", err)
	}
	r = status(t, svc, tenant).LatestRotation
	if r.FinishedAt == nil || r.Error != nil || r.ItemsDone != 3 {
		t.Fatalf("retried rotation = %+v", r)
	}
}

// Another process (another Service) with a cached keyset must read data written under a key
// that was added after it cached the keyset.
func TestRotationOnAnotherProcess(t *testing.T) {
	t.Parallel()
	a, tb := setup(t)
	b := keys.NewService(tb.d.App, tb.master) // default cache TTL
	tenant := newKeyedTenant(t, a, tb.d)
	old := encrypt(t, b, tenant, "cached on b", "ad") // b caches the one-key keyset

	rotate(t, a, tenant)
	fresh := encrypt(t, a, tenant, "written by a after rotating", "ad")

	if got := decrypt(t, b, tenant, fresh, "ad"); got != "written by a after rotating" {
		t.Fatalf("b decrypts a's new ciphertext to %q", got)
	}
	if got := decrypt(t, b, tenant, old, "ad"); got != "cached on b" {
		t.Fatalf("b decrypts its old ciphertext to %q", got)
	}
	if id, _ := keys.CiphertextKeyID(encrypt(t, b, tenant, "x", "ad")); id != status(t, a, tenant).PrimaryKeyID {
		t.Fatal("b still encrypts under the old primary after reloading the keyset")
	}
}

// End to end through a real River client: Rotate's job is committed with the rotation and a
// server with the worker registered runs it.
func TestReencryptionThroughRiver(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := dbtest.NewDatabase(t) // a queue of its own: no other test's jobs
	svc := keys.NewService(d.App, newMaster(t), keys.WithCacheTTL(0))
	owner := &memOwner{}
	svc.RegisterReencrypter("settings", owner)
	tenant := newKeyedTenant(t, svc, d)
	owner.add(t, svc, tenant, 3)

	workers := river.NewWorkers()
	river.AddWorker(workers, keys.NewRotateWorker(svc))
	client, err := jobs.New(d.AppPool, workers, nil, dbtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = client.Stop(context.Background()) })

	if _, err := svc.Rotate(ctx, "admin@example.com", tenant); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		r := status(t, svc, tenant).LatestRotation
		if r.FinishedAt != nil {
			if r.ItemsTotal == nil || *r.ItemsTotal != 3 || r.ItemsDone != 3 {
				t.Fatalf("finished rotation = %+v", r)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("rotation not finished after 20s: %+v", r)
		}
		time.Sleep(50 * time.Millisecond)
	}
	primary := status(t, svc, tenant).PrimaryKeyID
	owner.mu.Lock()
	defer owner.mu.Unlock()
	for _, s := range owner.items {
		if id, _ := keys.CiphertextKeyID(s.ct); id != primary {
			t.Fatalf("item %q under key %d, want %d", s.ad, id, primary)
		}
	}
}
