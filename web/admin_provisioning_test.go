package web_test

import (
	"context"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/provisioning"
)

// provisioningWorkers works the test server's provisioning runs until the test ends, as
// `tenantry serve` does.
func (b *testBundle) provisioningWorkers(t *testing.T) {
	t.Helper()
	if b.srv == nil {
		t.Fatal("provisioningWorkers needs the bundle's server")
	}
	c, err := provisioning.NewClient(b.db.AppPool, b.srv.Provisioning(), 2, dbtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = c.StopAndCancel(ctx)
	})
}

// awaitRun waits until the latest run for slug is in one of states.
func (b *testBundle) awaitRun(t *testing.T, slug string, states ...string) provisioning.Run {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		var id int64
		_ = b.db.AppPool.QueryRow(context.Background(), "SELECT coalesce(max(id), 0) FROM tenantry.provisioning_runs WHERE tenant_slug = $1", slug).Scan(&id)
		if id != 0 {
			r, err := b.srv.Provisioning().Run(context.Background(), id)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range states {
				if r.State == s {
					return r
				}
			}
			if time.Now().After(deadline) {
				t.Fatalf("run for %s is %s (%s), want %v", slug, r.State, r.Error, states)
			}
		} else if time.Now().After(deadline) {
			t.Fatalf("no run for %s", slug)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestProvisionFromAdminForm: the create form starts a run; the tenant page shows its panel,
// which polls while the run works and stops when it is done; the Provisioning page lists it
// under the right filter; the invitation e-mail's link lets the admin set a password once.
func TestProvisionFromAdminForm(t *testing.T) {
	b := withKeys(t)
	b.provisioningWorkers(t)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	form := url.Values{"name": {"Panel Co"}, "slug": {"panel-co"}, "plan": {"starter"}, "admin_email": {"boss@panel.example.com"},
		"_csrf": {c.token("/admin/tenants/new")}}
	res, _ := c.post("/admin/tenants", form)
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/admin/tenants/panel-co" {
		t.Fatalf("create: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	r := b.awaitRun(t, "panel-co", provisioning.StateDone, provisioning.StateFailed)
	if r.State != provisioning.StateDone {
		t.Fatalf("run %s: %s", r.State, r.Error)
	}
	_, body := c.get("/admin/tenants/panel-co")
	doc := parse(t, body)
	panel := doc.Find(`[data-testid="provisioning-run"]`)
	if panel.Length() != 1 || panel.AttrOr("data-state", "") != "done" {
		t.Fatalf("no finished run panel on the overview:\n%s", body)
	}
	if _, polls := panel.Attr("hx-trigger"); polls {
		t.Error("a finished run's panel still polls")
	}
	if n := doc.Find(`[data-testid="run-step"][data-state="done"]`).Length(); n != len(provisioning.Steps) {
		t.Errorf("%d steps shown done, want %d", n, len(provisioning.Steps))
	}
	if got := doc.Find(`#tenant-state [data-state]`).AttrOr("data-state", ""); got != "active" {
		t.Errorf("tenant state badge %q", got)
	}

	// The polled fragment carries the tenant's state out of band.
	res, frag := c.do(http.MethodGet, "/admin/provisioning/runs/"+strconv.FormatInt(r.ID, 10), nil, http.Header{"Hx-Request": {"true"}})
	if res.StatusCode != 200 || !strings.Contains(frag, `id="tenant-state" hx-swap-oob="true"`) || strings.Contains(frag, "<html") {
		t.Fatalf("poll fragment: %d\n%s", res.StatusCode, frag)
	}

	// The Provisioning page: under Done, not under Failed; searchable.
	_, body = c.get("/admin/provisioning?state=done&q=panel")
	if parse(t, body).Find(`[data-testid="run-row"][data-slug="panel-co"]`).Length() != 1 {
		t.Errorf("run not listed under done:\n%s", body)
	}
	_, body = c.get("/admin/provisioning?state=failed")
	if parse(t, body).Find(`[data-testid="run-row"][data-slug="panel-co"]`).Length() != 0 {
		t.Error("done run listed under failed")
	}
	_, body = c.get("/admin/provisioning?q=no-such-run-anywhere")
	if parse(t, body).Find(`[data-testid="empty-state"]`).Length() != 1 {
		t.Error("no empty state for a search without results")
	}

	// The invitation: link from the outbox, set-password form with the tenant's name.
	var text string
	if err := b.db.AppPool.QueryRow(context.Background(), "SELECT text_body FROM tenantry.mail_outbox WHERE kind = 'invitation' AND to_addr = 'boss@panel.example.com'").Scan(&text); err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`/t/panel-co/invitations/[A-Za-z0-9_-]+`).FindString(text)
	if link == "" {
		t.Fatalf("no link in %q", text)
	}
	invitee := b.client(t)
	res, body = invitee.get(link)
	if res.StatusCode != 200 || !strings.Contains(body, "Join Panel Co") || parse(t, body).Find(`[data-testid="invitation-email"]`).Text() != "boss@panel.example.com" {
		t.Fatalf("invitation page: %d\n%s", res.StatusCode, body)
	}
	tok := invitee.token(link)
	res, body = invitee.post(link, url.Values{"name": {"Boss"}, "password": {"short"}, "_csrf": {tok}})
	if res.StatusCode != http.StatusUnprocessableEntity || parse(t, body).Find(`[data-testid="error-password"]`).Length() != 1 {
		t.Fatalf("short password: %d", res.StatusCode)
	}
	res, _ = invitee.post(link, url.Values{"name": {"Boss"}, "password": {"a-long-enough-password"}, "_csrf": {tok}})
	if res.StatusCode != http.StatusSeeOther || res.Header.Get("Location") != "/t/panel-co" {
		t.Fatalf("accept: %d %s", res.StatusCode, res.Header.Get("Location"))
	}
	if res, body = invitee.get("/t/panel-co"); res.StatusCode != 200 || !strings.Contains(body, "Boss") {
		t.Fatalf("portal after accepting: %d", res.StatusCode)
	}
	// Used once: the link now explains itself.
	res, body = b.client(t).get(link)
	if res.StatusCode != http.StatusGone || !strings.Contains(body, "already used") {
		t.Fatalf("reused link: %d\n%s", res.StatusCode, body)
	}
	res, body = b.client(t).get("/t/panel-co/invitations/not-a-real-token")
	if res.StatusCode != http.StatusNotFound || !strings.Contains(body, "not valid") {
		t.Fatalf("unknown link: %d", res.StatusCode)
	}
}

// TestInvitationExpired: an expired link shows a clear message and creates nobody.
func TestInvitationExpired(t *testing.T) {
	b := setup(t)
	b.provisioningWorkers(t)
	r, err := b.srv.Provisioning().Start(context.Background(), provisioning.Request{Name: "Late Co", Slug: "late-co", PlanKey: "free",
		AdminEmail: "late@late.example.com", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	b.awaitRun(t, "late-co", provisioning.StateDone)
	var text string
	if err := b.db.AppPool.QueryRow(context.Background(), "SELECT text_body FROM tenantry.mail_outbox WHERE kind = 'invitation' AND tenant_id = $1", *r.TenantID).Scan(&text); err != nil {
		t.Fatal(err)
	}
	link := regexp.MustCompile(`/t/late-co/invitations/[A-Za-z0-9_-]+`).FindString(text)
	if _, err := b.db.OwnerPool.Exec(context.Background(), "UPDATE t_"+strconv.FormatInt(*r.TenantID, 10)+".invitations SET expires_at = now() - interval '1 minute'"); err != nil {
		t.Fatal(err)
	}
	c := b.client(t)
	res, body := c.get(link)
	if res.StatusCode != http.StatusGone || !strings.Contains(body, "has expired") {
		t.Fatalf("expired link: %d\n%s", res.StatusCode, body)
	}
}

// TestRunRetryAndCancelButtons: Cancel on a run (here one no worker picked up yet) undoes it and
// frees the slug; Retry refuses a run that has not failed, with a message.
func TestRunRetryAndCancelButtons(t *testing.T) {
	b := setup(t)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	res, _ := c.post("/admin/tenants", url.Values{"name": {"Undo Co"}, "slug": {"undo-co"}, "plan": {"free"}, "_csrf": {c.token("/admin/tenants/new")}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("create: %d", res.StatusCode)
	}
	r := b.awaitRun(t, "undo-co", provisioning.StatePending)
	path := "/admin/provisioning/runs/" + strconv.FormatInt(r.ID, 10)
	_, body := c.get("/admin/tenants/undo-co")
	doc := parse(t, body)
	if doc.Find(`[data-testid="provisioning-run"][hx-trigger="every 1s"]`).Length() != 1 || doc.Find(`[data-testid="run-cancel"]`).Length() != 1 {
		t.Fatalf("pending run: no polling panel with Cancel:\n%s", body)
	}
	tok := c.token(path)
	res, _ = c.post(path+"/retry", url.Values{"_csrf": {tok}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("retry: %d", res.StatusCode)
	}
	if _, body = c.get("/admin/provisioning"); !strings.Contains(body, "nothing was changed") {
		t.Error("refused retry not explained")
	}
	res, _ = c.post(path+"/cancel", url.Values{"_csrf": {tok}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("cancel: %d", res.StatusCode)
	}
	b.provisioningWorkers(t)
	b.awaitRun(t, "undo-co", provisioning.StateCancelled)
	if res, _ := c.get("/admin/tenants/undo-co"); res.StatusCode != http.StatusNotFound {
		t.Errorf("cancelled tenant's page: %d", res.StatusCode)
	}
	_, body = c.get(path)
	if parse(t, body).Find(`[data-testid="run-state"][data-state="cancelled"]`).Length() == 0 {
		t.Errorf("run page does not say cancelled")
	}
	// The slug is free again.
	res, _ = c.post("/admin/tenants", url.Values{"name": {"Undo Co"}, "slug": {"undo-co"}, "plan": {"free"}, "_csrf": {c.token("/admin/tenants/new")}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("second create with the slug: %d", res.StatusCode)
	}
}

// TestBulkCSV: one CSV with good rows and one bad row of each kind: the preview shows each
// problem at its row (also after a reload), Start runs the good rows only, and the batch page
// counts them done.
func TestBulkCSV(t *testing.T) {
	b := withKeys(t)
	b.provisioningWorkers(t)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	csv := "name,slug,template,admin_email,parent\n" +
		"Bulk One,bulk-one,,one@bulk.example.com,\n" +
		"Bulk Two,bulk-two,,two@bulk.example.com,bulk-one\n" +
		"Bulk Reserved,admin,,r@bulk.example.com,\n" +
		"Bulk Dup,bulk-one,,d@bulk.example.com,\n" +
		"Bulk Mail,bulk-mail,,not-an-email,\n" +
		"Bulk Tpl,bulk-tpl,No Such Template,t@bulk.example.com,\n" +
		"Bulk Orphan,bulk-orphan,,o@bulk.example.com,nobody-here\n"
	tok := c.token("/admin/provisioning/bulk")
	res, _ := c.multipartPost("/admin/provisioning/bulk", url.Values{"_csrf": {tok}}, "file", "tenants.csv", []byte(csv), nil)
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("upload: %d", res.StatusCode)
	}
	batch := res.Header.Get("Location")
	check := func(body string) {
		t.Helper()
		doc := parse(t, body)
		want := map[string]string{"2": "", "3": "", "4": "reserved", "5": "line 2", "6": "valid e-mail", "7": "No template", "8": "No tenant has this slug"}
		rows := doc.Find(`[data-testid="batch-row"]`)
		if rows.Length() != len(want) {
			t.Fatalf("%d rows in the preview:\n%s", rows.Length(), body)
		}
		for line, msg := range want {
			row := doc.Find(`[data-testid="batch-row"][data-line="` + line + `"]`)
			errs := row.Find(`[data-testid="row-errors"]`).Text()
			if (msg == "") != (errs == "") || !strings.Contains(errs, msg) {
				t.Errorf("line %s errors %q, want %q", line, errs, msg)
			}
		}
	}
	_, body := c.get(batch)
	check(body)
	if got := parse(t, body).Find(`[data-testid="batch-valid"]`).Text(); got != "2" {
		t.Errorf("valid rows %q", got)
	}
	_, body = c.get(batch) // a reload shows the same stored preview
	check(body)

	res, _ = c.post(batch+"/start", url.Values{"_csrf": {c.token(batch)}})
	if res.StatusCode != http.StatusSeeOther {
		t.Fatalf("start: %d", res.StatusCode)
	}
	one := b.awaitRun(t, "bulk-one", provisioning.StateDone, provisioning.StateFailed)
	two := b.awaitRun(t, "bulk-two", provisioning.StateDone, provisioning.StateFailed)
	if one.State != provisioning.StateDone || two.State != provisioning.StateDone {
		t.Fatalf("runs: %s %q, %s %q", one.State, one.Error, two.State, two.Error)
	}
	var parent string
	if err := b.db.AppPool.QueryRow(context.Background(), "SELECT p.slug FROM tenantry.tenants t JOIN tenantry.tenants p ON p.id = t.parent_id WHERE t.slug = 'bulk-two'").Scan(&parent); err != nil || parent != "bulk-one" {
		t.Errorf("bulk-two's parent %q (%v)", parent, err)
	}
	var runs int
	_ = b.db.AppPool.QueryRow(context.Background(), "SELECT count(*) FROM tenantry.provisioning_runs WHERE batch_id IS NOT NULL").Scan(&runs)
	if runs != 2 {
		t.Errorf("%d runs started, want 2", runs)
	}
	_, body = c.get(batch)
	doc := parse(t, body)
	if doc.Find(`[data-testid="batch-done"]`).Text() != "2" || doc.Find(`[data-testid="batch-skipped"]`).Text() != "5" {
		t.Errorf("progress: %q done, %q skipped", doc.Find(`[data-testid="batch-done"]`).Text(), doc.Find(`[data-testid="batch-skipped"]`).Text())
	}
	if _, polls := doc.Find(`#batch-body`).Attr("hx-trigger"); polls {
		t.Error("a finished batch still polls")
	}
	// Starting twice does nothing more.
	c.post(batch+"/start", url.Values{"_csrf": {c.token(batch)}})
	_ = b.db.AppPool.QueryRow(context.Background(), "SELECT count(*) FROM tenantry.provisioning_runs WHERE batch_id IS NOT NULL").Scan(&runs)
	if runs != 2 {
		t.Errorf("after a second start: %d runs", runs)
	}
}

// TestBulkCSVFileProblems: wrong columns and a file that is not UTF-8 get one clear message and
// no rows.
func TestBulkCSVFileProblems(t *testing.T) {
	b := setup(t)
	admin := b.user(t, identity.RoleAdmin)
	c := b.client(t)
	c.signIn(admin.Email)
	for name, tc := range map[string]struct {
		data []byte
		want string
	}{
		"columns": {[]byte("name,slug,email\nA,a-co,a@example.com\n"), "Missing: template, admin_email, parent"},
		"latin1":  {[]byte("name,slug,template,admin_email,parent\nCaf\xe9,cafe,,a@example.com,\n"), "not UTF-8"},
		"empty":   {[]byte(""), "The file is empty"},
		"quotes":  {[]byte("name,slug,template,admin_email,parent\n\"Broken,x,,a@example.com,\n"), "not valid CSV"},
	} {
		res, _ := c.multipartPost("/admin/provisioning/bulk", url.Values{"_csrf": {c.token("/admin/provisioning/bulk")}}, "file", name+".csv", tc.data, nil)
		if res.StatusCode != http.StatusSeeOther {
			t.Fatalf("%s: upload %d", name, res.StatusCode)
		}
		_, body := c.get(res.Header.Get("Location"))
		doc := parse(t, body)
		if got := doc.Find(`[data-testid="batch-file-error"]`).Text(); !strings.Contains(got, tc.want) {
			t.Errorf("%s: file error %q, want %q", name, got, tc.want)
		}
		if doc.Find(`[data-testid="batch-row"]`).Length() != 0 || doc.Find(`[data-testid="batch-start"]`).Length() != 0 {
			t.Errorf("%s: rows or a start button shown for a bad file", name)
		}
	}
}
