package quota_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/riverqueue/river"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/jobs"
	"github.com/tenantry/tenantry/internal/quota"
)

// TestWebhookRetriedByRiver: the alert's webhook job runs in a real River client; the receiver
// answers 500, River schedules the retry after WebhookBackoff(1) (10 s), and the retry (made due
// at once here) delivers it. Each attempt is in the delivery log and River's job.
func TestWebhookRetriedByRiver(t *testing.T) {
	d := dbtest.NewDatabase(t) // its own database: no other test's jobs
	svc := quota.NewService(d)
	b := &testBundle{db: d, svc: svc}
	ctx := context.Background()
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		w.WriteHeader(http.StatusOK)
	}))
	defer srv.Close()
	if err := svc.SetNotifier(notifier("webhook", nil, "river-secret")); err != nil {
		t.Fatal(err)
	}
	workers := river.NewWorkers()
	river.AddWorker(workers, &quota.WebhookWorker{Service: svc})
	client, err := jobs.New(d.AppPool, workers, nil, dbtest.Logger(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := client.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = client.Stop(ctx) }()

	tn := b.newTenant(t, "free")
	if err := svc.SetWebhook(ctx, "a", tn.ID, srv.URL); err != nil {
		t.Fatal(err)
	}
	b.setLimit(t, tn.ID, "api_requests", 80, 100)
	mustConsume(t, svc, tn.ID, "api_requests", 50, true)
	if _, err := svc.EvaluateAlerts(ctx); err != nil {
		t.Fatal(err)
	}
	type jobRow struct {
		ID          int64
		State       string
		Attempt     int
		AttemptedAt *time.Time
		ScheduledAt time.Time
	}
	job := func() jobRow {
		var j jobRow
		if err := d.App.Raw("SELECT id, state, attempt, attempted_at, scheduled_at FROM tenantry.river_job WHERE kind = 'quota.webhook'").Scan(&j).Error; err != nil {
			t.Fatal(err)
		}
		return j
	}
	waitFor := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
			if ok() {
				return
			}
		}
		t.Fatalf("timed out waiting for %s: job %+v", what, job())
	}
	waitFor("the first attempt to fail", func() bool { return job().State == "retryable" })
	j := job()
	if wait := j.ScheduledAt.Sub(*j.AttemptedAt); j.Attempt != 1 || wait < 9*time.Second || wait > 12*time.Second {
		t.Fatalf("retry scheduled %s after attempt %d, want about 10 s", wait, j.Attempt)
	}
	ds, _ := svc.Deliveries(ctx, tn.ID, 5)
	if len(ds) != 1 || ds[0].Attempts != 1 || ds[0].LastStatus == nil || *ds[0].LastStatus != 500 || ds[0].DeliveredAt != nil {
		t.Fatalf("log after the 500: %+v", ds)
	}
	if _, err := client.JobRetry(ctx, j.ID); err != nil { // make the scheduled retry due now
		t.Fatal(err)
	}
	waitFor("the retry to deliver", func() bool { return job().State == "completed" })
	ds, _ = svc.Deliveries(ctx, tn.ID, 5)
	if ds[0].Attempts != 2 || *ds[0].LastStatus != 200 || ds[0].DeliveredAt == nil || calls.Load() != 2 {
		t.Fatalf("log after the retry: %+v, %d calls", ds[0], calls.Load())
	}
}
