package provisioning_test

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/riverqueue/river"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/provisioning"
	"github.com/tenantry/tenantry/internal/templates"
	"github.com/tenantry/tenantry/internal/validation"
)

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) != "" { // a worker process started by TestResumeAfterKill
		os.Exit(crashChild())
	}
	os.Exit(dbtest.Main(m))
}

var queues atomic.Int64

// bundle is a test's database, a fault injector and a way to start and stop workers.
type bundle struct {
	t      *testing.T
	d      *db.DB
	queue  string
	master []byte
	keys   *keys.Service
	svc    *provisioning.Service
	faults func(ctx context.Context, step string, attempt int) error
	mu     sync.Mutex
}

// setup returns a Service on the package database, working its own queue (tests run in
// parallel on one database), with fast retries and a fault injector the test may set.
func setup(t *testing.T, opts ...provisioning.Option) *bundle {
	t.Helper()
	d := dbtest.Open(t)
	mk := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(mk)
	master, err := keys.NewLocalMaster(mk)
	if err != nil {
		t.Fatal(err)
	}
	b := &bundle{t: t, d: d, keys: keys.NewService(d.App, master), queue: fmt.Sprintf("prov_test_%d", queues.Add(1)), master: mk}
	opts = append([]provisioning.Option{provisioning.WithKeys(b.keys), provisioning.WithRetry(3, 5*time.Millisecond),
		provisioning.WithQueue(b.queue),
		provisioning.WithFaults(func(ctx context.Context, step string, attempt int) error {
			b.mu.Lock()
			f := b.faults
			b.mu.Unlock()
			if f == nil {
				return nil
			}
			return f(ctx, step, attempt)
		})}, opts...)
	b.svc = provisioning.NewService(d, dbtest.Logger(t), opts...)
	return b
}

func (b *bundle) setFaults(f func(ctx context.Context, step string, attempt int) error) {
	b.mu.Lock()
	b.faults = f
	b.mu.Unlock()
}

// workers starts a River client working the bundle's runs; it is stopped when the test ends.
func (b *bundle) workers() *river.Client[pgx.Tx] {
	b.t.Helper()
	c, err := provisioning.NewClient(b.d.AppPool, b.svc, 2, dbtest.Logger(b.t))
	if err != nil {
		b.t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		b.t.Fatal(err)
	}
	b.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.StopAndCancel(ctx)
	})
	return c
}

var slugs atomic.Int64

func uniqueSlug(prefix string) string {
	return fmt.Sprintf("%s-%d-%d", prefix, time.Now().UnixNano()%1e6, slugs.Add(1))
}

func (b *bundle) start(slug string) provisioning.Run {
	b.t.Helper()
	r, err := b.svc.Start(context.Background(), provisioning.Request{Name: "Co " + slug, Slug: slug, PlanKey: "starter",
		AdminEmail: "admin@" + slug + ".example.com", Actor: "test@example.com"})
	if err != nil {
		b.t.Fatal(err)
	}
	return r
}

// wait polls the run until it is in one of states.
func (b *bundle) wait(id int64, states ...string) provisioning.Run {
	b.t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		r, err := b.svc.Run(context.Background(), id)
		if err != nil {
			b.t.Fatal(err)
		}
		for _, s := range states {
			if r.State == s {
				return r
			}
		}
		if time.Now().After(deadline) {
			b.t.Fatalf("run %d is %s (error %q), want one of %v; steps %+v", id, r.State, r.Error, states, r.Steps)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (b *bundle) count(q string, args ...any) int {
	b.t.Helper()
	var n int
	if err := b.d.OwnerPool.QueryRow(context.Background(), q, args...).Scan(&n); err != nil {
		b.t.Fatalf("%s: %v", q, err)
	}
	return n
}

// traces counts what a tenant's provisioning leaves behind.
type traces struct {
	Schemas, Roles, Keysets, Quotas, Tenants, Invitations, InvitationMails, Projects int
}

func (b *bundle) traces(r provisioning.Run, tenantID int64) traces {
	schema := db.TenantSchema(tenantID)
	tr := traces{
		Schemas: b.count("SELECT count(*) FROM pg_namespace WHERE nspname = $1", schema),
		// Roles are cluster-wide and other test databases have a tenant with this id too: count
		// the role when it holds anything in this database.
		Roles: b.count(`SELECT count(DISTINCT r.oid) FROM pg_roles r JOIN pg_shdepend d ON d.refobjid = r.oid
			WHERE r.rolname = $1 AND d.dbid = (SELECT oid FROM pg_database WHERE datname = current_database())`, schema),
		Keysets:         b.count("SELECT count(*) FROM tenantry.tenant_keysets WHERE tenant_id = $1", tenantID),
		Quotas:          b.count("SELECT count(*) FROM tenantry.quota_limits WHERE tenant_id = $1", tenantID),
		Tenants:         b.count("SELECT count(*) FROM tenantry.tenants WHERE slug = $1", r.TenantSlug),
		InvitationMails: b.count("SELECT count(*) FROM tenantry.mail_outbox WHERE kind = 'invitation' AND to_addr = $1", r.AdminEmail),
	}
	if tr.Schemas == 1 {
		tr.Invitations = b.count("SELECT count(*) FROM " + pgx.Identifier{schema, "invitations"}.Sanitize())
		tr.Projects = b.count("SELECT count(*) FROM " + pgx.Identifier{schema, "projects"}.Sanitize())
	}
	return tr
}

func TestRunCompletes(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.workers()
	r := b.start(uniqueSlug("done"))
	if len(r.Steps) != len(provisioning.Steps) || r.State != provisioning.StatePending {
		t.Fatalf("new run: %s with %d steps", r.State, len(r.Steps))
	}
	r = b.wait(r.ID, provisioning.StateDone, provisioning.StateFailed)
	if r.State != provisioning.StateDone {
		t.Fatalf("run %s: %s", r.State, r.Error)
	}
	for i, st := range r.Steps {
		// Attempts may exceed 1 only by a real transient failure (see TestEveryStepRetries).
		if st.Name != provisioning.Steps[i] || st.State != provisioning.StepDone || st.Attempts < 1 || st.Error != "" || st.DurationMS == nil || st.FinishedAt == nil {
			t.Errorf("step %d = %+v", i+1, st)
		}
	}
	if done, total := r.Progress(); done != total || r.FinishedAt == nil || r.StartedAt == nil {
		t.Errorf("progress %d/%d, started %v finished %v", done, total, r.StartedAt, r.FinishedAt)
	}
	got := b.traces(r, *r.TenantID)
	want := traces{Schemas: 1, Roles: 1, Keysets: 1, Quotas: 6, Tenants: 1, Invitations: 1, InvitationMails: 1, Projects: 3}
	if got != want {
		t.Errorf("traces = %+v, want %+v", got, want)
	}
	var state string
	if err := b.d.AppPool.QueryRow(context.Background(), "SELECT state FROM tenantry.tenants WHERE id = $1", *r.TenantID).Scan(&state); err != nil || state != "active" {
		t.Errorf("tenant state %q (%v)", state, err)
	}
	if n := b.count("SELECT count(*) FROM tenantry.mail_outbox WHERE kind = 'provisioning.ready' AND tenant_id = $1", *r.TenantID); n != 1 {
		t.Errorf("%d ready messages", n)
	}
	var link string
	if err := b.d.AppPool.QueryRow(context.Background(), "SELECT text_body FROM tenantry.mail_outbox WHERE kind = 'invitation' AND tenant_id = $1", *r.TenantID).Scan(&link); err != nil ||
		!strings.Contains(link, "/t/"+r.TenantSlug+"/invitations/") {
		t.Errorf("invitation e-mail has no link: %q (%v)", link, err)
	}
	if n := b.count("SELECT count(*) FROM tenantry.audit_events WHERE tenant_id = $1 AND action IN ('provisioning.started', 'provisioning.completed', 'tenant.activated')", *r.TenantID); n != 3 {
		t.Errorf("%d audit events for start, completion and activation, want 3", n)
	}
}

// TestResumeAfterCrash stops the worker's process (its River client, cancelling the job's
// context) in the middle of a step, after the step's own effect, then starts a new client: the
// run completes with one schema, one invitation and one invitation e-mail, and the interrupted
// step was attempted again.
func TestResumeAfterCrash(t *testing.T) {
	// Not parallel: Resume queues every unfinished run of the package database, and other
	// tests' runs must not be taken over by this test's workers and their faults.
	for _, crashAt := range []string{provisioning.StepSchema, provisioning.StepKey, provisioning.StepAdmin, provisioning.StepSeed, provisioning.StepNotify} {
		t.Run(strings.ReplaceAll(crashAt, " ", "_"), func(t *testing.T) {
			b := setup(t)
			reached := make(chan struct{})
			var once sync.Once
			b.setFaults(func(ctx context.Context, step string, attempt int) error {
				if step != crashAt || attempt != 1 {
					return nil
				}
				once.Do(func() { close(reached) })
				<-ctx.Done() // the process dies here, the step's effect made, its completion not recorded
				return ctx.Err()
			})
			first := b.workers()
			r := b.start(uniqueSlug("crash"))
			select {
			case <-reached:
			case <-time.After(30 * time.Second):
				t.Fatal("the run never reached the step")
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := first.StopAndCancel(ctx); err != nil {
				t.Fatal(err)
			}
			mid, err := b.svc.Run(context.Background(), r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if mid.State != provisioning.StateRunning {
				t.Fatalf("after the crash the run is %s", mid.State)
			}
			for _, st := range mid.Steps {
				if st.Name == crashAt && (st.State != provisioning.StepRunning || st.Attempts != 1) {
					t.Fatalf("crashed step = %+v", st)
				}
			}

			// The server starts again.
			b.setFaults(nil)
			b.workers()
			// River put the interrupted job back (it is waiting), so Resume may add none.
			if _, err := b.svc.Resume(context.Background()); err != nil {
				t.Fatalf("resume: %v", err)
			}
			r = b.wait(r.ID, provisioning.StateDone, provisioning.StateFailed)
			if r.State != provisioning.StateDone {
				t.Fatalf("resumed run %s: %s", r.State, r.Error)
			}
			// Attempts are at least these: tenant roles are cluster-wide, so tests on other
			// databases may make a GRANT fail with "tuple concurrently updated", which retries.
			for _, st := range r.Steps {
				want := 1
				if st.Name == crashAt {
					want = 2
				}
				if st.State != provisioning.StepDone || st.Attempts < want {
					t.Errorf("step %s: %s after %d attempts, want done after %d", st.Name, st.State, st.Attempts, want)
				}
			}
			got := b.traces(r, *r.TenantID)
			want := traces{Schemas: 1, Roles: 1, Keysets: 1, Quotas: 6, Tenants: 1, Invitations: 1, InvitationMails: 1, Projects: 3}
			if got != want {
				t.Errorf("traces = %+v, want %+v", got, want)
			}
			if n := b.count("SELECT count(*) FROM tenantry.mail_outbox WHERE tenant_id = $1", *r.TenantID); n != 2 {
				t.Errorf("%d e-mails queued, want the invitation and the ready message", n)
			}
		})
	}
}

// TestEveryStepRetries makes each step fail twice: the run still completes, the step after
// three attempts, every other step after one.
func TestEveryStepRetries(t *testing.T) {
	t.Parallel()
	// Five attempts: two injected failures, and room for a real transient one (see below).
	b := setup(t, provisioning.WithRetry(5, time.Millisecond))
	b.workers()
	for _, failing := range provisioning.Steps {
		b.setFaults(func(_ context.Context, step string, attempt int) error {
			if step == failing && attempt < 3 {
				return fmt.Errorf("injected failure %d of %s", attempt, step)
			}
			return nil
		})
		r := b.start(uniqueSlug("retry"))
		r = b.wait(r.ID, provisioning.StateDone, provisioning.StateFailed)
		if r.State != provisioning.StateDone {
			t.Fatalf("%s: run %s: %s", failing, r.State, r.Error)
		}
		// At least: tenant roles are cluster-wide, so tests on other databases may make a GRANT
		// fail once with "tuple concurrently updated", which is retried like any failure.
		for _, st := range r.Steps {
			want := 1
			if st.Name == failing {
				want = 3
			}
			if st.Attempts < want || st.State != provisioning.StepDone || st.Error != "" {
				t.Errorf("%s failing: step %s = %s after %d attempts (error %q), want done after %d", failing, st.Name, st.State, st.Attempts, st.Error, want)
			}
		}
		if got := b.traces(r, *r.TenantID); got.Schemas != 1 || got.Invitations != 1 || got.InvitationMails != 1 || got.Projects != 3 || got.Keysets != 1 {
			t.Errorf("%s failing: traces %+v", failing, got)
		}
	}
}

// TestFailedRunRetry: a step that keeps failing stops the run in failed with the error; Retry
// resumes at that step and the run completes.
func TestFailedRunRetry(t *testing.T) {
	t.Parallel()
	b := setup(t)
	var broken atomic.Bool
	broken.Store(true)
	b.setFaults(func(_ context.Context, step string, _ int) error {
		if step == provisioning.StepSeed && broken.Load() {
			return errors.New("seed store unreachable")
		}
		return nil
	})
	b.workers()
	r := b.start(uniqueSlug("failed"))
	r = b.wait(r.ID, provisioning.StateFailed, provisioning.StateDone)
	if r.State != provisioning.StateFailed || !strings.Contains(r.Error, "seed initial data failed after 3 attempts: seed store unreachable") {
		t.Fatalf("run %s: %q", r.State, r.Error)
	}
	for _, st := range r.Steps {
		switch {
		case st.Name == provisioning.StepSeed && (st.State != provisioning.StepFailed || st.Attempts != 3 || st.Error != "seed store unreachable"):
			t.Errorf("failed step = %+v", st)
		case st.Position > 8 && st.State != provisioning.StepPending:
			t.Errorf("step after the failure = %+v", st)
		}
	}
	// A failed run may be cancelled, after which Retry refuses it.
	if err := b.svc.Cancel(context.Background(), r.ID, "test"); err != nil {
		t.Fatal(err)
	}
	c := b.wait(r.ID, provisioning.StateCancelled)
	if err := b.svc.Retry(context.Background(), c.ID, "test"); !errors.Is(err, provisioning.ErrState) {
		t.Fatalf("retry of a cancelled run: %v", err)
	}

	// A second run fails the same way, and Retry completes it.
	r = b.start(uniqueSlug("failed"))
	r = b.wait(r.ID, provisioning.StateFailed)
	broken.Store(false)
	if err := b.svc.Retry(context.Background(), r.ID, "test"); err != nil {
		t.Fatal(err)
	}
	r = b.wait(r.ID, provisioning.StateDone, provisioning.StateFailed)
	if r.State != provisioning.StateDone || r.Error != "" {
		t.Fatalf("after retry: %s %q", r.State, r.Error)
	}
	if st := r.Steps[7]; st.Name != provisioning.StepSeed || st.Attempts != 1 || st.State != provisioning.StepDone {
		t.Errorf("retried step = %+v", st)
	}
	if got := b.traces(r, *r.TenantID); got.Projects != 3 || got.Invitations != 1 || got.InvitationMails != 1 {
		t.Errorf("traces %+v", got)
	}
}

// TestCancelCompensates cancels a run in the middle (while a step holds it) and a failed run:
// compensation leaves no schema, role, keyset, quota limits or tenant, withdraws the invitation
// e-mail, and the slug can be used again.
func TestCancelCompensates(t *testing.T) {
	t.Parallel()
	b := setup(t)
	hold := make(chan struct{})
	holding := make(chan struct{})
	var once sync.Once
	b.setFaults(func(_ context.Context, step string, _ int) error {
		if step == provisioning.StepSeed {
			once.Do(func() { close(holding) })
			<-hold
		}
		return nil
	})
	b.workers()
	slug := uniqueSlug("cancel")
	r := b.start(slug)
	tenantID := *r.TenantID
	<-holding
	cancelled := make(chan error, 1)
	go func() { cancelled <- b.svc.Cancel(context.Background(), r.ID, "test@example.com") }()
	// Release the step only once the cancel has reached the database: it either waits for the
	// step's lock on the run or has already marked the run cancelling (a fixed sleep lost that
	// race on a loaded machine, and the run finished first). Another test's lock wait elsewhere
	// on the server can release it early: then it is as good as the sleep was.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		// A row-lock wait shows as an ungranted transactionid lock (pg_locks hides nobody's).
		waiting := b.count("SELECT count(*) FROM pg_locks WHERE NOT granted AND locktype IN ('transactionid', 'tuple')")
		if waiting > 0 || b.count("SELECT count(*) FROM tenantry.provisioning_runs WHERE id = $1 AND state = 'cancelling'", r.ID) == 1 {
			break
		}
		if time.Now().After(deadline) {
			close(hold)
			t.Fatal("the cancel never reached the run")
		}
	}
	close(hold)
	if err := <-cancelled; err != nil {
		t.Fatal(err)
	}
	r = b.wait(r.ID, provisioning.StateCancelled)
	if got := b.traces(r, tenantID); got != (traces{InvitationMails: 1}) {
		t.Errorf("after cancel: %+v, want nothing but the withdrawn e-mail", got)
	}
	if n := b.count("SELECT count(*) FROM tenantry.mail_outbox WHERE tenant_id IS NULL AND kind = 'invitation' AND to_addr = $1 AND state = 'failed'", r.AdminEmail); n != 1 {
		t.Errorf("invitation e-mail not withdrawn (%d)", n)
	}
	if r.TenantID != nil {
		t.Errorf("run still points at tenant %d", *r.TenantID)
	}
	// Steps 1–8 ran: each is compensated. Activate and notify may have run before the cancel
	// got its turn (then they are compensated too) or not (then they stay pending).
	for _, st := range r.Steps {
		ok := st.State == provisioning.StepCompensated || (st.Position > 8 && st.State == provisioning.StepPending && st.Attempts == 0)
		if !ok {
			t.Errorf("step %s = %s after %d attempts", st.Name, st.State, st.Attempts)
		}
	}
	if n := b.count("SELECT count(*) FROM tenantry.audit_events WHERE tenant_id = $1 AND action = 'provisioning.cancelled'", tenantID); n != 1 {
		t.Errorf("%d cancellation audit events", n)
	}
	if err := b.svc.Cancel(context.Background(), r.ID, "test"); !errors.Is(err, provisioning.ErrState) {
		t.Errorf("second cancel: %v", err)
	}

	// The slug is free again: a new run takes it and completes.
	b.setFaults(nil)
	again := b.start(slug)
	again = b.wait(again.ID, provisioning.StateDone, provisioning.StateFailed)
	if again.State != provisioning.StateDone {
		t.Fatalf("second run for the slug: %s %s", again.State, again.Error)
	}
}

func TestStartRefusesBadRequests(t *testing.T) {
	t.Parallel()
	b := setup(t)
	taken := uniqueSlug("taken")
	b.start(taken)
	cases := []struct {
		name  string
		req   provisioning.Request
		field string
	}{
		{"reserved", provisioning.Request{Name: "Admin", Slug: "admin", PlanKey: "free"}, "slug"},
		{"reserved api", provisioning.Request{Name: "Api", Slug: "api", PlanKey: "free"}, "slug"},
		{"taken", provisioning.Request{Name: "Taken", Slug: taken, PlanKey: "free"}, "slug"},
		{"bad e-mail", provisioning.Request{Name: "Mail", Slug: uniqueSlug("mail"), PlanKey: "free", AdminEmail: "not-an-address"}, "admin_email"},
		{"short password", provisioning.Request{Name: "Pw", Slug: uniqueSlug("pw"), PlanKey: "free", AdminEmail: "a@example.com", AdminPassword: "short"}, "admin_password"},
		{"unknown template", provisioning.Request{Name: "Tpl", Slug: uniqueSlug("tpl"), TemplateID: ptr(int64(987654))}, "template"},
		{"no plan", provisioning.Request{Name: "Plan", Slug: uniqueSlug("plan")}, "plan"},
	}
	before := b.count("SELECT count(*) FROM tenantry.provisioning_runs WHERE tenant_slug = $1", taken)
	for _, c := range cases {
		_, err := b.svc.Start(context.Background(), c.req)
		if fields := validation.Fields(err); fields[c.field] == "" {
			t.Errorf("%s: error %v, want one at %s", c.name, err, c.field)
		}
		if c.req.Slug != taken {
			if n := b.count("SELECT count(*) FROM tenantry.provisioning_runs WHERE tenant_slug = $1", c.req.Slug); n != 0 {
				t.Errorf("%s: stored %d runs", c.name, n)
			}
			if n := b.count("SELECT count(*) FROM tenantry.tenants WHERE slug = $1", c.req.Slug); n != 0 {
				t.Errorf("%s: stored the tenant", c.name)
			}
		}
	}
	if after := b.count("SELECT count(*) FROM tenantry.provisioning_runs WHERE tenant_slug = $1", taken); after != before {
		t.Errorf("the refused duplicate stored %d runs", after-before)
	}
}

func ptr[T any](v T) *T { return &v }

// TestRunFromTemplate: a run from a template gets the template's plan, its quota limits and
// its version recorded on the tenant (which is how its settings apply), and its seed dataset.
func TestRunFromTemplate(t *testing.T) {
	t.Parallel()
	b := setup(t)
	b.workers()
	ctx := context.Background()
	tpl, err := templates.NewService(b.d).Create(ctx, "test", templates.Input{Name: "Prov Test " + uniqueSlug("tpl"), TenantType: "company",
		Industry: "technology", Compliance: templates.ComplianceNone, PlanKey: "professional", SeedDataset: "empty",
		Quotas: map[string]templates.QuotaLimit{"seats": {Soft: 7, Hard: 9}}})
	if err != nil {
		t.Fatal(err)
	}
	r, err := b.svc.Start(ctx, provisioning.Request{Name: "Templated", Slug: uniqueSlug("tpl"), TemplateID: &tpl.ID, PlanKey: "free",
		AdminEmail: "a@templated.example.com", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	if r.TemplateVersionID == nil || *r.TemplateVersionID != tpl.Latest.ID || r.PlanKey != "professional" {
		t.Fatalf("run records version %v plan %s, want %d professional", r.TemplateVersionID, r.PlanKey, tpl.Latest.ID)
	}
	r = b.wait(r.ID, provisioning.StateDone, provisioning.StateFailed)
	if r.State != provisioning.StateDone {
		t.Fatalf("run %s: %s", r.State, r.Error)
	}
	var version int64
	var plan string
	if err := b.d.AppPool.QueryRow(ctx, "SELECT template_version_id, plan_key FROM tenantry.tenants WHERE id = $1", *r.TenantID).Scan(&version, &plan); err != nil {
		t.Fatal(err)
	}
	if version != tpl.Latest.ID || plan != "professional" {
		t.Errorf("tenant: version %d plan %s", version, plan)
	}
	if n := b.count("SELECT hard_limit FROM tenantry.quota_limits WHERE tenant_id = $1 AND dimension = 'seats'", *r.TenantID); n != 9 {
		t.Errorf("seats hard limit %d, want the template's 9", n)
	}
	if got := b.traces(r, *r.TenantID); got.Projects != 0 || got.Quotas != 6 {
		t.Errorf("empty seed dataset / quotas: %+v", got)
	}
}
