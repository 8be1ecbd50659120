package lifecycle_test

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/lifecycle"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/internal/validation"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

// One master key for the package: the signing key it wraps lives in the shared test database.
var master = sync.OnceValue(func() keys.Master {
	b := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(b)
	m, err := keys.NewLocalMaster(b)
	if err != nil {
		panic(err)
	}
	return m
})

type bundle struct {
	d       *db.DB
	svc     *lifecycle.Service
	tenants *tenant.Service
	keys    *keys.Service
	now     time.Time
	mu      sync.Mutex
}

func setup(t testing.TB) *bundle {
	t.Helper()
	d := dbtest.Open(t)
	log := dbtest.Logger(t)
	k := keys.NewService(d.App, master())
	ts := tenant.NewService(d, log, tenant.WithKeys(k))
	b := &bundle{d: d, tenants: ts, keys: k, now: time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC)}
	b.svc = lifecycle.New(lifecycle.Config{DB: d, Tenants: ts, Keys: k, Master: master(), Log: log, ExportDir: t.TempDir()})
	b.svc.SetClock(func() time.Time { b.mu.Lock(); defer b.mu.Unlock(); return b.now })
	return b
}

func (b *bundle) at(days float64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.now = time.Date(2030, 1, 1, 9, 0, 0, 0, time.UTC).Add(time.Duration(days * 24 * float64(time.Hour)))
}

func (b *bundle) tenant(t testing.TB, parent string) tenant.Tenant {
	t.Helper()
	r := make([]byte, 4)
	_, _ = rand.Read(r)
	slug := "lc-" + hex.EncodeToString(r)
	tn, err := b.tenants.Create(context.Background(), "test", tenant.NewTenant{Slug: slug, Name: "Tenant " + slug, PlanKey: "free", ParentSlug: parent})
	if err != nil {
		t.Fatal(err)
	}
	return tn
}

func (b *bundle) state(t testing.TB, id int64) string {
	t.Helper()
	var s string
	if err := b.d.App.Raw("SELECT state FROM tenantry.tenants WHERE id = ?", id).Scan(&s).Error; err != nil {
		t.Fatal(err)
	}
	return s
}

func (b *bundle) tick(t testing.TB) {
	t.Helper()
	if err := b.svc.Tick(context.Background()); err != nil {
		t.Fatal(err)
	}
}

// TestTransitions checks every pair of states: the forward steps and cancel before purge are
// allowed, everything else refused with a reason.
func TestTransitions(t *testing.T) {
	allowed := map[[2]string]bool{
		{"active", "notice"}: true, {"notice", "degraded"}: true, {"degraded", "suspended"}: true,
		{"suspended", "exported"}: true, {"exported", "purged"}: true,
		{"notice", "active"}: true, {"degraded", "active"}: true, {"suspended", "active"}: true, {"exported", "active"}: true,
	}
	n := 0
	for _, from := range tenant.States {
		for _, to := range tenant.States {
			t.Run(from+"→"+to, func(t *testing.T) {
				err := lifecycle.CheckTransition(from, to)
				if allowed[[2]string{from, to}] {
					if err != nil {
						t.Fatalf("refused: %v", err)
					}
					return
				}
				n++
				var te *lifecycle.TransitionError
				if !errors.As(err, &te) || !errors.Is(err, lifecycle.ErrTransition) || te.Reason == "" {
					t.Fatalf("allowed (or no reason): %v", err)
				}
			})
		}
	}
	if n != len(tenant.States)*len(tenant.States)-len(allowed) {
		t.Fatalf("%d forbidden transitions checked", n)
	}
	if err := lifecycle.CheckTransition("active", "bogus"); err == nil {
		t.Fatal("unknown state allowed")
	}
}

// TestTransitionRefusedInDatabase: a refused transition changes nothing and records nothing.
func TestTransitionRefusedInDatabase(t *testing.T) {
	b := setup(t)
	tn := b.tenant(t, "")
	err := b.d.App.Transaction(func(tx *gorm.DB) error {
		_, err := b.svc.Transition(tx, tn.ID, lifecycle.Suspended, "test", "skip ahead")
		return err
	})
	if !errors.Is(err, lifecycle.ErrTransition) {
		t.Fatalf("active → suspended: %v", err)
	}
	if s := b.state(t, tn.ID); s != "active" {
		t.Fatalf("state %s", s)
	}
	es, _ := b.svc.Events(context.Background(), tn.ID)
	if len(es) != 0 {
		t.Fatalf("events %v", es)
	}
}

func TestStartValidation(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	parent := b.tenant(t, "")
	child := b.tenant(t, parent.Slug)
	_, err := b.svc.Start(ctx, "admin@example.com", parent.ID, lifecycle.StartInput{Reason: " ", NoticeDays: 400})
	fields := validation.Fields(err)
	if fields["reason"] == "" || fields["notice_days"] == "" || fields["children_action"] == "" {
		t.Fatalf("errors %v", err)
	}
	if s := b.state(t, parent.ID); s != "active" {
		t.Fatalf("state %s after refused start", s)
	}
	// Moving children under one of its own descendants is refused.
	_, err = b.svc.Start(ctx, "admin@example.com", parent.ID, lifecycle.StartInput{Reason: "r", ChildrenAction: "move", ChildrenTarget: child.Slug})
	if validation.Fields(err)["children_target"] == "" {
		t.Fatalf("move under own child: %v", err)
	}
}

func TestStartMovesChildren(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	parent := b.tenant(t, "")
	child := b.tenant(t, parent.Slug)
	target := b.tenant(t, "")
	if _, err := b.svc.Start(ctx, "admin@example.com", parent.ID, lifecycle.StartInput{Reason: "contract ended", ChildrenAction: "move", ChildrenTarget: target.Slug}); err != nil {
		t.Fatal(err)
	}
	moved, _ := b.tenants.Get(ctx, child.Slug)
	if moved.ParentID == nil || *moved.ParentID != target.ID || moved.State != "active" {
		t.Fatalf("child %+v", moved)
	}
	if s := b.state(t, parent.ID); s != "notice" {
		t.Fatalf("parent %s", s)
	}
}

func TestStartDecommissionsChildren(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	parent := b.tenant(t, "")
	child := b.tenant(t, parent.Slug)
	grandchild := b.tenant(t, child.Slug)
	if _, err := b.svc.Start(ctx, "admin@example.com", parent.ID, lifecycle.StartInput{Reason: "contract ended", NoticeDays: 5, ChildrenAction: "decommission"}); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{parent.ID, child.ID, grandchild.ID} {
		if s := b.state(t, id); s != "notice" {
			t.Fatalf("tenant %d: %s", id, s)
		}
	}
	p, _, _ := b.svc.PlanOf(ctx, grandchild.ID)
	if p.NoticeDays != 5 || !strings.Contains(p.Reason, parent.Slug) {
		t.Fatalf("grandchild plan %+v", p)
	}
}

func TestPolicyResolution(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tn := b.tenant(t, "")
	p, err := b.svc.PolicyFor(ctx, tn)
	if err != nil {
		t.Fatal(err)
	}
	if p.NoticeDays != 30 || p.RetentionDays != 30 || p.Sources["notice_days"] != "global" {
		t.Fatalf("free plan: %+v", p)
	}
	tn.PlanKey = "enterprise"
	p, _ = b.svc.PolicyFor(ctx, tn)
	if p.NoticeDays != 60 || p.ReadOnlyDays != 14 || p.Sources["notice_days"] != "plan enterprise" {
		t.Fatalf("enterprise: %+v", p)
	}
	// A plan cannot undercut the global retention; a longer one wins.
	days := 5
	if err := b.svc.SetPolicy(ctx, lifecycle.PolicyRow{Scope: "plan", Key: "starter", RetentionDays: &days}); err != nil {
		t.Fatal(err)
	}
	tn.PlanKey = "starter"
	p, _ = b.svc.PolicyFor(ctx, tn)
	if p.RetentionDays != 30 {
		t.Fatalf("starter retention %d", p.RetentionDays)
	}
}

func addUser(t testing.TB, b *bundle, tn tenant.Tenant, email string, role tenantauth.Role) {
	t.Helper()
	if _, err := tenantauth.NewService(b.d).CreateUser(context.Background(), tn.ID, "test", tenantauth.NewUser{Email: email, Name: "U", Role: role, Password: "correct-horse-battery"}); err != nil {
		t.Fatal(err)
	}
}

func outboxCount(t testing.TB, b *bundle, tenantID int64) int64 {
	t.Helper()
	var n int64
	if err := b.d.App.Raw("SELECT count(*) FROM tenantry.mail_outbox WHERE tenant_id = ? AND kind LIKE 'lifecycle.%'", tenantID).Scan(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// TestFullDecommission walks a tenant through every step on a moved clock: notice, read-only,
// suspension (keys revoked, sessions ended), export, retention, legal hold, purge and the
// certificate, checking the campaign and that the purge leaves nothing behind.
func TestFullDecommission(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tn := b.tenant(t, "")
	addUser(t, b, tn, "admin@acme.example", tenantauth.RoleAdmin)
	addUser(t, b, tn, "member@acme.example", tenantauth.RoleMember)

	p, err := b.svc.Start(ctx, "ops@tenantry.example", tn.ID, lifecycle.StartInput{Reason: "Contract ended", NoticeDays: 10})
	if err != nil {
		t.Fatal(err)
	}
	if !p.DegradeAt.Equal(b.svc.Now().Add(3*24*time.Hour)) || !p.SuspendAt.Equal(b.svc.Now().Add(10*24*time.Hour)) {
		t.Fatalf("schedule %v %v", p.DegradeAt, p.SuspendAt)
	}
	if got := outboxCount(t, b, tn.ID); got != 2 {
		t.Fatalf("start message: %d outbox rows, want 2 (one per user)", got)
	}
	ms, _ := b.svc.Campaign(ctx, tn.ID)
	if keysOf(ms) != "start,t-7,t-1,suspended,export_ready" {
		t.Fatalf("campaign %s", keysOf(ms))
	}
	// Edit the T-1 message before it goes out; a sent one cannot be edited.
	for _, m := range ms {
		switch m.Key {
		case "t-1":
			if err := b.svc.EditMessage(ctx, "ops", tn.ID, m.ID, lifecycle.MessageEdit{Subject: "Last day for {{.Tenant}}", Body: "Bye. {{.Contact}}", ScheduledAt: m.ScheduledAt}); err != nil {
				t.Fatal(err)
			}
			if err := b.svc.EditMessage(ctx, "ops", tn.ID, m.ID, lifecycle.MessageEdit{Subject: "{{.Nope}}", Body: "x", ScheduledAt: m.ScheduledAt}); validation.Fields(err)["subject"] == "" {
				t.Fatalf("bad template accepted: %v", err)
			}
		case "start":
			if err := b.svc.EditMessage(ctx, "ops", tn.ID, m.ID, lifecycle.MessageEdit{Subject: "x", Body: "y", ScheduledAt: m.ScheduledAt}); err == nil {
				t.Fatal("sent message edited")
			}
		}
	}

	b.at(2)
	b.tick(t)
	if s := b.state(t, tn.ID); s != "notice" {
		t.Fatalf("day 2: %s", s)
	}
	b.at(3.5) // T-7 and read-only
	b.tick(t)
	if s := b.state(t, tn.ID); s != "degraded" {
		t.Fatalf("day 3.5: %s", s)
	}
	if got := outboxCount(t, b, tn.ID); got != 4 {
		t.Fatalf("after T-7: %d outbox rows", got)
	}
	b.tick(t) // a re-run never duplicates
	if got := outboxCount(t, b, tn.ID); got != 4 {
		t.Fatalf("re-run: %d outbox rows", got)
	}
	var subj string
	b.d.App.Raw("SELECT subject FROM tenantry.mail_outbox WHERE tenant_id = ? AND kind = 'lifecycle.t-1' LIMIT 1", tn.ID).Scan(&subj)
	if subj != "" {
		t.Fatalf("T-1 sent early: %q", subj)
	}
	b.at(9.5)
	b.tick(t)
	b.d.App.Raw("SELECT subject FROM tenantry.mail_outbox WHERE tenant_id = ? AND kind = 'lifecycle.t-1' LIMIT 1", tn.ID).Scan(&subj)
	if subj != "Last day for "+tn.Name {
		t.Fatalf("edited T-1 subject %q", subj)
	}

	b.at(10.1) // suspension, export, exported
	b.tick(t)
	if s := b.state(t, tn.ID); s != "exported" {
		t.Fatalf("day 10.1: %s", s)
	}
	if _, err := tenantauth.NewService(b.d).SignIn(ctx, tn.ID, "admin@acme.example", "correct-horse-battery", "127.0.0.1"); !errors.Is(err, tenantauth.ErrTenantClosed) {
		t.Fatalf("sign-in after suspension: %v", err)
	}
	e, ok, err := b.svc.LatestExport(ctx, tn.ID, true)
	if err != nil || !ok {
		t.Fatalf("no export: %v", err)
	}
	if _, err := lifecycle.VerifyArchive(b.svc.ArchivePath(e)); err != nil {
		t.Fatal(err)
	}
	if got := outboxCount(t, b, tn.ID); got != 10 {
		t.Fatalf("after export: %d outbox rows, want 10 (5 messages × 2 users)", got)
	}
	var quotaRows int64
	b.d.App.Raw("SELECT count(*) FROM tenantry.quota_limits WHERE tenant_id = ?", tn.ID).Scan(&quotaRows)
	if quotaRows != 0 {
		t.Fatalf("quota rows not released: %d", quotaRows)
	}

	// Retention: refused before it ends.
	if _, err := b.svc.Purge(ctx, "ops", tn.ID); !errors.Is(err, lifecycle.ErrRetention) {
		t.Fatalf("purge before retention: %v", err)
	}
	// Legal hold: refused while set, and the tick waits.
	if err := b.svc.SetLegalHold(ctx, "counsel@tenantry.example", tn.ID, "Litigation hold, case 42"); err != nil {
		t.Fatal(err)
	}
	b.at(50)
	b.tick(t)
	if s := b.state(t, tn.ID); s != "exported" {
		t.Fatalf("purged under legal hold: %s", s)
	}
	if _, err := b.svc.Purge(ctx, "ops", tn.ID); !errors.Is(err, lifecycle.ErrLegalHold) {
		t.Fatalf("purge under hold: %v", err)
	}
	if err := b.svc.ReleaseLegalHold(ctx, "counsel@tenantry.example", tn.ID); err != nil {
		t.Fatal(err)
	}
	cert, err := b.svc.Purge(ctx, "ops@tenantry.example", tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if s := b.state(t, tn.ID); s != "purged" {
		t.Fatalf("after purge: %s", s)
	}
	assertGone(t, b, tn.ID, b.svc.ArchivePath(e))
	if cert.Operator != "ops@tenantry.example" || len(cert.Destroyed.Tables) == 0 || len(cert.Destroyed.KeyIDs) == 0 || len(cert.Destroyed.ExportArchives) != 1 {
		t.Fatalf("certificate %+v", cert)
	}
	usersRows := int64(-1)
	for _, tc := range cert.Destroyed.Tables {
		if strings.HasSuffix(tc.Name, ".users") {
			usersRows = tc.Rows
		}
	}
	if usersRows != 2 {
		t.Fatalf("certificate says users had %d rows", usersRows)
	}
	// Cancel after purge is refused; the platform audit trail is kept.
	if err := b.svc.Cancel(ctx, "ops", tn.ID, "oops"); !errors.Is(err, lifecycle.ErrTransition) {
		t.Fatalf("cancel after purge: %v", err)
	}
	var auditRows int64
	b.d.App.Raw("SELECT count(*) FROM tenantry.audit_events WHERE tenant_id = ?", tn.ID).Scan(&auditRows)
	if auditRows < 8 {
		t.Fatalf("platform audit trail: %d events", auditRows)
	}
	doc, ok, err := b.svc.CertificateOf(ctx, tn.ID)
	if err != nil || !ok {
		t.Fatal("no stored certificate", err)
	}
	pub, ok, _ := b.svc.PublicKey(ctx)
	if !ok {
		t.Fatal("no public key")
	}
	if _, err := lifecycle.VerifyCertificate(doc, pub); err != nil {
		t.Fatal(err)
	}
	es, _ := b.svc.Events(ctx, tn.ID)
	var path []string
	for _, ev := range es {
		path = append(path, ev.ToState)
	}
	if strings.Join(path, ",") != "notice,degraded,suspended,exported,purged" {
		t.Fatalf("events %v", path)
	}
}

func keysOf(ms []lifecycle.Message) string {
	var ks []string
	for _, m := range ms {
		ks = append(ks, m.Key)
	}
	return strings.Join(ks, ",")
}

// assertGone checks that nothing of the tenant survives: schema, role, keyset material, sessions
// (users live in the schema) and export archive.
func assertGone(t *testing.T, b *bundle, tenantID int64, archive string) {
	t.Helper()
	ctx := context.Background()
	var n int
	b.d.OwnerPool.QueryRow(ctx, "SELECT count(*) FROM pg_namespace WHERE nspname = $1", db.TenantSchema(tenantID)).Scan(&n)
	if n != 0 {
		t.Fatal("schema still exists")
	}
	// Roles are cluster-wide: another test database may still use t_<id> (same id there), in
	// which case DropTenantPlane leaves it, holding nothing in this database.
	b.d.OwnerPool.QueryRow(ctx, `SELECT count(*) FROM pg_shdepend d JOIN pg_database x ON x.oid = d.dbid
		WHERE x.datname = current_database() AND d.refobjid = (SELECT oid FROM pg_roles WHERE rolname = $1)`, db.TenantSchema(tenantID)).Scan(&n)
	if n != 0 {
		t.Fatal("role still holds privileges in this database")
	}
	b.d.OwnerPool.QueryRow(ctx, "SELECT count(*) FROM tenantry.tenant_keysets WHERE tenant_id = $1 AND (encrypted_keyset IS NOT NULL OR destroyed_at IS NULL)", tenantID).Scan(&n)
	if n != 0 {
		t.Fatal("keyset not destroyed")
	}
	if _, err := b.keys.Encrypt(ctx, tenantID, []byte("x"), nil); err == nil {
		t.Fatal("keyset still encrypts")
	}
	if _, err := tenantauth.NewService(b.d).Get(ctx, tenantID, 1); err == nil {
		t.Fatal("a user (and so a session) still loads")
	}
	if _, err := os.Stat(archive); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("archive still on disk: %v", err)
	}
	b.d.OwnerPool.QueryRow(ctx, "SELECT count(*) FROM tenantry.quota_limits WHERE tenant_id = $1", tenantID).Scan(&n)
	if n != 0 {
		t.Fatal("quota rows left")
	}
}

func TestCancelBeforePurge(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tn := b.tenant(t, "")
	addUser(t, b, tn, "a@example.com", tenantauth.RoleAdmin)
	if _, err := b.svc.Start(ctx, "ops", tn.ID, lifecycle.StartInput{Reason: "Unpaid", NoticeDays: 3}); err != nil {
		t.Fatal(err)
	}
	b.at(3.1)
	b.tick(t)
	if s := b.state(t, tn.ID); s != "exported" {
		t.Fatalf("state %s", s)
	}
	if err := b.svc.Cancel(ctx, "ops", tn.ID, ""); validation.Fields(err)["note"] == "" {
		t.Fatalf("cancel without note: %v", err)
	}
	if err := b.svc.Cancel(ctx, "ops", tn.ID, "Paid after all"); err != nil {
		t.Fatal(err)
	}
	if s := b.state(t, tn.ID); s != "active" {
		t.Fatalf("state %s", s)
	}
	if _, err := tenantauth.NewService(b.d).SignIn(ctx, tn.ID, "a@example.com", "correct-horse-battery", "127.0.0.1"); err != nil {
		t.Fatalf("sign-in after reactivation: %v", err)
	}
	b.at(100)
	b.tick(t)
	if s := b.state(t, tn.ID); s != "active" {
		t.Fatalf("cancelled plan advanced: %s", s)
	}
	// Starting again is a new run with a fresh campaign.
	if _, err := b.svc.Start(ctx, "ops", tn.ID, lifecycle.StartInput{Reason: "Unpaid again", NoticeDays: 3}); err != nil {
		t.Fatal(err)
	}
	p, _, _ := b.svc.PlanOf(ctx, tn.ID)
	if p.Run != 2 || p.CancelledAt != nil {
		t.Fatalf("plan %+v", p)
	}
}

// TestExportCompleteness: every table of the tenant's schema (from the catalogue) is in the
// archive with its exact row count, platform rows are scoped to the tenant, hashes match, and a
// changed byte fails verification.
func TestExportCompleteness(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tn := b.tenant(t, "")
	other := b.tenant(t, "")
	addUser(t, b, tn, "x@example.com", tenantauth.RoleAdmin)
	addUser(t, b, other, "y@example.com", tenantauth.RoleAdmin)
	schema := db.TenantSchema(tn.ID)
	// A table no code knows about, with awkward values.
	if _, err := b.d.OwnerPool.Exec(ctx, "CREATE TABLE "+schema+".notes (id int PRIMARY KEY, body text, data jsonb)"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.d.OwnerPool.Exec(ctx, "INSERT INTO "+schema+`.notes SELECT g, E'line\nbreak, "quoted" \\ back', '{"k": "v\u0001"}' FROM generate_series(1, 250) g`); err != nil {
		t.Fatal(err)
	}
	e, err := b.svc.RequestExport(ctx, "ops", tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := b.svc.RunExport(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	e, _ = b.svc.ExportByID(ctx, tn.ID, e.ID)
	path := b.svc.ArchivePath(e)
	m, err := lifecycle.VerifyArchive(path)
	if err != nil {
		t.Fatal(err)
	}
	rows, _ := b.d.OwnerPool.Query(ctx, "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = $1 AND c.relkind = 'r'", schema)
	var want []string
	for rows.Next() {
		var n string
		rows.Scan(&n)
		want = append(want, n)
	}
	rows.Close()
	got := map[string]int64{}
	for _, tb := range m.Tables {
		got[tb.Name] = tb.Rows
	}
	for _, n := range want {
		var c int64
		b.d.OwnerPool.QueryRow(ctx, "SELECT count(*) FROM "+schema+"."+n).Scan(&c)
		r, ok := got[schema+"."+n]
		if !ok || r != c {
			t.Errorf("table %s: archive has %d rows (listed %v), schema has %d", n, r, ok, c)
		}
	}
	if got[schema+".notes"] != 250 || got[schema+".users"] != 1 {
		t.Fatalf("rows %v", got)
	}
	if _, ok := got["tenantry.audit_events"]; !ok {
		t.Fatal("platform audit trail not exported")
	}
	if _, ok := got["tenantry.tenant_keysets"]; ok {
		t.Fatal("key material exported")
	}
	// Every control-plane table with a tenant_id, and every one whose rows hang off such a table
	// by a foreign key (invoice lines), is in the archive.
	var want2 []string
	b.d.App.Raw(`SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = 'tenantry' AND c.relkind = 'r' AND c.relname <> ALL(ARRAY['tenant_keysets', 'destruction_certificates']) AND (
		  EXISTS (SELECT 1 FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attname = 'tenant_id' AND NOT a.attisdropped)
		  OR EXISTS (SELECT 1 FROM pg_constraint k JOIN pg_attribute y ON y.attrelid = k.confrelid AND y.attname = 'tenant_id'
		             JOIN pg_class p ON p.oid = k.confrelid
		             WHERE k.conrelid = c.oid AND k.contype = 'f' AND cardinality(k.conkey) = 1 AND p.relname <> 'tenant_keysets'))`).Scan(&want2)
	if len(want2) < 5 {
		t.Fatalf("only %d platform tables found", len(want2))
	}
	for _, n := range want2 {
		if _, ok := got["tenantry."+n]; !ok {
			t.Errorf("platform table %s not exported", n)
		}
	}
	// Platform rows are the tenant's only: its audit events mention only its own id.
	zr, _ := zip.OpenReader(path)
	for _, f := range zr.File {
		if f.Name == "platform/audit_events.jsonl" {
			r, _ := f.Open()
			body, _ := io.ReadAll(r)
			r.Close()
			if bytes.Contains(body, []byte(`"tenant_id":`+strconv.FormatInt(other.ID, 10)+`,`)) {
				t.Fatal("another tenant's audit events exported")
			}
		}
	}
	names := []string{}
	for _, f := range zr.File {
		names = append(names, f.Name)
	}
	zr.Close()
	for _, want := range []string{"manifest.json", "settings.json", "quota_limits.json", "tenant.json", "tenant/notes.csv", "tenant/notes.jsonl", "platform/usage_events.jsonl"} {
		if !slices.Contains(names, want) {
			t.Errorf("archive lacks %s (has %v)", want, names)
		}
	}

	// One changed byte in one file fails verification.
	tampered := filepath.Join(t.TempDir(), "tampered.zip")
	rewrite(t, path, tampered, "tenant/notes.jsonl", func(b []byte) []byte { b[10] ^= 1; return b })
	if _, err := lifecycle.VerifyArchive(tampered); err == nil || !strings.Contains(err.Error(), "tenant/notes.jsonl") {
		t.Fatalf("tampered archive: %v", err)
	}
}

func rewrite(t *testing.T, src, dst, name string, change func([]byte) []byte) {
	t.Helper()
	zr, err := zip.OpenReader(src)
	if err != nil {
		t.Fatal(err)
	}
	defer zr.Close()
	out, _ := os.Create(dst)
	defer out.Close()
	zw := zip.NewWriter(out)
	for _, f := range zr.File {
		r, _ := f.Open()
		body, _ := io.ReadAll(r)
		r.Close()
		if f.Name == name {
			body = change(body)
		}
		w, _ := zw.Create(f.Name)
		w.Write(body)
	}
	zw.Close()
}

// TestExportEmptyTenant: a tenant with no rows still gets a valid archive.
func TestExportEmptyTenant(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tn := b.tenant(t, "")
	e, err := b.svc.RequestExport(ctx, "ops", tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := b.svc.RunOpenExports(ctx); err != nil || n < 1 {
		t.Fatalf("ran %d: %v", n, err)
	}
	e, _ = b.svc.ExportByID(ctx, tn.ID, e.ID)
	m, err := lifecycle.VerifyArchive(b.svc.ArchivePath(e))
	if err != nil {
		t.Fatal(err)
	}
	for _, tb := range m.Tables {
		if tb.Source == "tenant" && tb.Name == db.TenantSchema(tn.ID)+".users" && tb.Rows != 0 {
			t.Fatalf("users %d", tb.Rows)
		}
	}
	if len(m.Tables) == 0 {
		t.Fatal("no tables listed")
	}
}

// TestExportResumesAfterCrash: an export left running by a dead worker is started again from
// scratch and finishes; the half-written temporary file does not survive.
func TestExportResumesAfterCrash(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tn := b.tenant(t, "")
	e, _ := b.svc.RequestExport(ctx, "ops", tn.ID)
	// Another worker is on it (fresh heartbeat): it is left alone.
	b.d.App.Exec("UPDATE tenantry.lifecycle_exports SET state = 'running', heartbeat_at = now() WHERE id = ?", e.ID)
	if err := b.svc.RunExport(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	if e2, _ := b.svc.ExportByID(ctx, tn.ID, e.ID); e2.State != lifecycle.ExportRunning || e2.Attempts != 0 {
		t.Fatalf("an export another worker runs was taken over: %+v", e2)
	}
	stale := time.Now().UTC().Add(-time.Hour)
	b.d.App.Exec("UPDATE tenantry.lifecycle_exports SET state = 'running', heartbeat_at = ?, tables_done = 3 WHERE id = ?", stale, e.ID)
	os.WriteFile(filepath.Join(b.svc.ExportDir(), "half.zip.123.tmp"), []byte("partial"), 0o600)
	if _, err := b.svc.RunOpenExports(ctx); err != nil {
		t.Fatal(err)
	}
	e, _ = b.svc.ExportByID(ctx, tn.ID, e.ID)
	if e.State != lifecycle.ExportDone || e.Attempts != 1 {
		t.Fatalf("export %+v", e)
	}
	if _, err := lifecycle.VerifyArchive(b.svc.ArchivePath(e)); err != nil {
		t.Fatal(err)
	}
	// Past its keeping time the archive is deleted and no longer downloadable.
	b.at(31)
	if n, err := b.svc.DeleteExpiredExports(ctx); err != nil || n < 1 { // other tests' exports in the package database expire too
		t.Fatalf("expired exports deleted: %d, %v", n, err)
	}
	if _, err := os.Stat(b.svc.ArchivePath(e)); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("expired archive still on disk: %v", err)
	}
	if _, _, err := b.svc.OpenArchive(ctx, tn.ID, e.ID); !errors.Is(err, lifecycle.ErrNoExport) {
		t.Fatalf("expired archive opens: %v", err)
	}
}

// TestPurgeResumesAfterCrash: a purge that stopped after dropping the schema is finished by the
// next attempt, which certifies the facts captured before the drop and deletes nothing twice.
func TestPurgeResumesAfterCrash(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tn := b.tenant(t, "")
	addUser(t, b, tn, "crash@example.com", tenantauth.RoleAdmin)
	if _, err := b.svc.Start(ctx, "ops", tn.ID, lifecycle.StartInput{Reason: "Closed", NoticeDays: 1}); err != nil {
		t.Fatal(err)
	}
	b.at(1.1)
	b.tick(t)
	// A legal hold keeps the tick from purging, so the test can stage the crash.
	b.at(40)
	if err := b.svc.SetLegalHold(ctx, "c", tn.ID, "hold"); err != nil {
		t.Fatal(err)
	}
	b.tick(t)
	b.svc.ReleaseLegalHold(ctx, "c", tn.ID)
	// The crash: facts captured, schema and role dropped, then the process died.
	if err := lifecycle.CaptureFactsForTest(b.svc, ctx, tn.ID, "ops"); err != nil {
		t.Fatal(err)
	}
	if err := b.d.DropTenantPlane(ctx, tn.ID); err != nil {
		t.Fatal(err)
	}
	cert, err := b.svc.Purge(ctx, "ops", tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, tc := range cert.Destroyed.Tables {
		if strings.HasSuffix(tc.Name, ".users") && tc.Rows == 1 {
			found = true
		}
	}
	if !found {
		t.Fatalf("certificate lost the pre-crash facts: %+v", cert.Destroyed.Tables)
	}
	// A second purge is refused (already purged); nothing is deleted again.
	if _, err := b.svc.Purge(ctx, "ops", tn.ID); !errors.Is(err, lifecycle.ErrTransition) {
		t.Fatalf("second purge: %v", err)
	}
}

func TestCertificateVerification(t *testing.T) {
	b := setup(t)
	ctx := context.Background()
	tn := b.tenant(t, "")
	if _, err := b.svc.Start(ctx, "ops", tn.ID, lifecycle.StartInput{Reason: "Closed", NoticeDays: 1}); err != nil {
		t.Fatal(err)
	}
	b.at(1.1)
	b.tick(t)
	b.at(40)
	b.tick(t)
	doc, ok, err := b.svc.CertificateOf(ctx, tn.ID)
	if err != nil || !ok {
		t.Fatalf("no certificate: %v", err)
	}
	pub, _, _ := b.svc.PublicKey(ctx)
	sc, err := lifecycle.VerifyCertificate(doc, pub)
	if err != nil {
		t.Fatal(err)
	}
	if sc.Certificate.Tenant.Slug != tn.Slug || sc.Certificate.Operator != "system:lifecycle" {
		t.Fatalf("certificate %+v", sc.Certificate)
	}
	// Every single-byte change fails.
	for i := 0; i < len(doc); i += 7 {
		edited := bytes.Clone(doc)
		edited[i] ^= 0x01
		if _, err := lifecycle.VerifyCertificate(edited, pub); err == nil {
			t.Fatalf("byte %d changed (%q → %q) still verifies", i, doc[i], edited[i])
		}
	}
	// A different trusted key refuses it.
	other := make([]byte, 32)
	if _, err := lifecycle.VerifyCertificate(doc, other); !errors.Is(err, lifecycle.ErrUntrustedKey) {
		t.Fatalf("untrusted key: %v", err)
	}
	pdf, err := lifecycle.CertificatePDF(sc)
	if err != nil || !bytes.HasPrefix(pdf, []byte("%PDF")) {
		t.Fatalf("pdf: %v", err)
	}
}
