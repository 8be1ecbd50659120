package provisioning

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
)

// RunArgs asks for run RunID to be worked: advanced step by step while running, compensated
// while cancelling. Working a run that has ended does nothing, so extra jobs are harmless.
type RunArgs struct {
	RunID int64 `json:"run_id"`
}

// Kind names the job in River.
func (RunArgs) Kind() string { return "provisioning.run" }

// Worker works RunArgs jobs.
type Worker struct {
	river.WorkerDefaults[RunArgs]
	service *Service
}

// NewWorker returns the worker for s's runs.
func NewWorker(s *Service) *Worker { return &Worker{service: s} }

// Work advances or compensates the run.
func (w *Worker) Work(ctx context.Context, job *river.Job[RunArgs]) error {
	return w.service.work(ctx, job.Args.RunID)
}

// NextRetry retries a job whose process was interrupted soon: the run's steps are idempotent.
func (w *Worker) NextRetry(job *river.Job[RunArgs]) time.Time {
	return time.Now().Add(min(time.Duration(1<<min(job.Attempt, 5))*time.Second, 30*time.Second))
}

// Timeout bounds one job: a whole run, backoffs included.
func (w *Worker) Timeout(*river.Job[RunArgs]) time.Duration { return 5 * time.Minute }

// ClientConfig is the River configuration that works provisioning runs with workers
// concurrent runs on s's queue.
func ClientConfig(s *Service, workers int, log *slog.Logger) *river.Config {
	ws := river.NewWorkers()
	river.AddWorker(ws, NewWorker(s))
	return &river.Config{
		Schema:  db.Schema,
		Queues:  map[string]river.QueueConfig{s.queue: {MaxWorkers: max(1, workers)}},
		Workers: ws,
		// A new run is picked up as soon as it is inserted (LISTEN/NOTIFY), polling as a fallback.
		FetchCooldown:     5 * time.Millisecond,
		FetchPollInterval: 250 * time.Millisecond,
		JobTimeout:        5 * time.Minute,
		MaxAttempts:       25,
		// River reports routine queue statistics at info level every few seconds.
		Logger: slog.New(warnOnly{log.Handler()}),
	}
}

// NewClient returns a River client that works s's runs, workers at a time, on pool. Start it
// with Start, then call Service.Resume.
func NewClient(pool *pgxpool.Pool, s *Service, workers int, log *slog.Logger) (*river.Client[pgx.Tx], error) {
	return river.NewClient(riverpgxv5.New(pool), ClientConfig(s, workers, log))
}

// Resume queues a job for every run that is not finished (pending, running or cancelling) and
// has no job waiting to be worked, so runs interrupted by a crash continue as soon as the server
// starts again rather than when River rescues their stuck job. Extra jobs for a run wait for the run's lock and then find nothing to
// do. It returns how many runs it queued.
func (s *Service) Resume(ctx context.Context) (int, error) {
	n := 0
	err := s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var ids []int64
		// Runs whose job is still waiting to be worked need no second one.
		err := tx.Model(&Run{}).Where("state IN ?", []string{StatePending, StateRunning, StateCancelling}).
			Where(`NOT EXISTS (SELECT 1 FROM tenantry.river_job j WHERE j.kind = ? AND (j.args->>'run_id')::bigint = provisioning_runs.id
				AND j.state IN ('available', 'scheduled', 'pending'))`, RunArgs{}.Kind()).
			Order("id").Pluck("id", &ids).Error
		if err != nil {
			return err
		}
		for _, id := range ids {
			if err := s.enqueue(ctx, tx, id); err != nil {
				return err
			}
		}
		n = len(ids)
		return nil
	})
	return n, err
}

// permanent marks an error that retrying cannot fix (the tenant vanished, its keyset was
// destroyed): the step fails at once.
type permanent struct{ error }

func (p permanent) Unwrap() error { return p.error }

// maxErrorText bounds a stored error.
const maxErrorText = 1000

func clip(s string) string {
	if len(s) > maxErrorText {
		return s[:maxErrorText]
	}
	return s
}

// work advances run id until it ends, fails or must wait; while cancelling it compensates.
// One job at a time works a run: extra jobs (from Resume, or River retrying a job whose process
// went away) leave it to the one holding the run's advisory lock, which is released when that
// job ends or its database session dies with its process.
func (s *Service) work(ctx context.Context, id int64) error {
	conn, err := s.db.AppPool.Acquire(ctx)
	if err != nil {
		return err
	}
	defer conn.Release()
	var mine bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", runLockKey(id)).Scan(&mine); err != nil {
		return err
	}
	if !mine {
		return nil // another job is working this run right now
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "SELECT pg_advisory_unlock($1)", runLockKey(id))
	}()
	for {
		again, err := s.advance(ctx, id)
		if err != nil || !again {
			return err
		}
	}
}

// advance runs one attempt of the run's next step. It reports whether there is more to do now.
func (s *Service) advance(ctx context.Context, id int64) (bool, error) {
	gdb := s.db.App.WithContext(ctx)
	// First, in its own transaction, mark the step running (visible to the progress panel).
	var step Step
	var run Run
	var wait time.Duration
	err := gdb.Transaction(func(tx *gorm.DB) error {
		var err error
		run, err = lockRun(tx, id)
		if err != nil {
			return err
		}
		if run.State != StatePending && run.State != StateRunning {
			return nil
		}
		err = tx.Where("run_id = ? AND state <> ?", id, StepDone).Order("position").Limit(1).Find(&step).Error
		if err != nil || step.Position == 0 {
			return err
		}
		now := s.now()
		if step.RetryAt != nil && step.RetryAt.After(now) {
			wait = step.RetryAt.Sub(now)
			return nil
		}
		if run.State == StatePending {
			if err := tx.Model(&Run{}).Where("id = ?", id).Updates(map[string]any{"state": StateRunning, "started_at": now, "updated_at": now}).Error; err != nil {
				return err
			}
			run.State = StateRunning
		}
		upd := map[string]any{"state": StepRunning, "attempts": gorm.Expr("attempts + 1"), "retry_at": nil}
		if step.StartedAt == nil {
			upd["started_at"] = now
		}
		step.Attempts++
		return tx.Model(&Step{}).Where("run_id = ? AND position = ?", id, step.Position).Updates(upd).Error
	})
	if err != nil {
		return false, err
	}
	switch {
	case run.State == StateCancelling:
		return false, s.compensate(ctx, id)
	case run.State != StateRunning:
		return false, nil // ended (done, failed, cancelled): nothing to do
	case step.Position == 0:
		return false, nil
	case wait > 0:
		// A backoff is pending (this is an extra job, e.g. from Resume): sleep it out here.
		return sleep(ctx, wait)
	}

	// Then the step itself, holding the run's lock so a cancel waits for it, recording it done
	// in the same transaction as its control-plane effect.
	began := time.Now()
	var note string
	stepErr := gdb.Transaction(func(tx *gorm.DB) error {
		r, err := lockRun(tx, id)
		if err != nil {
			return err
		}
		if r.State != StateRunning {
			return errStopped
		}
		if note, err = s.execute(ctx, tx, r, step.Name); err != nil {
			return err
		}
		if s.faults != nil {
			if err := s.faults(ctx, step.Name, step.Attempts); err != nil {
				return err
			}
		}
		now := s.now()
		ms := time.Since(began).Milliseconds()
		if err := tx.Model(&Step{}).Where("run_id = ? AND position = ?", id, step.Position).Updates(map[string]any{
			"state": StepDone, "finished_at": now, "duration_ms": ms, "error": "", "note": note, "retry_at": nil}).Error; err != nil {
			return err
		}
		if step.Position < len(Steps) {
			return tx.Model(&Run{}).Where("id = ?", id).Update("updated_at", now).Error
		}
		if err := tx.Model(&Run{}).Where("id = ?", id).Updates(map[string]any{
			"state": StateDone, "finished_at": now, "updated_at": now, "error": "", "admin_password_hash": nil}).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: r.TenantID, Actor: "system:provisioning", Action: "provisioning.completed", Target: r.TenantSlug,
			Detail: audit.Detail(map[string]any{"run_id": id, "took_ms": r.Elapsed(now).Milliseconds()})})
	})
	switch {
	case stepErr == nil:
		return true, nil
	case errors.Is(stepErr, errStopped):
		// Cancelled between marking the step running and starting it: it did nothing, so it is
		// pending again (and compensation leaves it alone). The next round compensates.
		err := gdb.Model(&Step{}).Where("run_id = ? AND position = ? AND state = ?", id, step.Position, StepRunning).
			Updates(map[string]any{"state": StepPending, "attempts": gorm.Expr("attempts - 1")}).Error
		return err == nil, err
	case ctx.Err() != nil:
		// The process is stopping: leave the step running; River retries the job.
		return false, ctx.Err()
	}

	// The attempt failed: record it, and either back off or fail the run.
	s.log.Warn("provisioning step failed", "run", id, "step", step.Name, "attempt", step.Attempts, "err", stepErr)
	var backoff time.Duration
	err = gdb.Transaction(func(tx *gorm.DB) error {
		r, err := lockRun(tx, id)
		if err != nil {
			return err
		}
		if r.State != StateRunning {
			return nil
		}
		now := s.now()
		msg := clip(stepErr.Error())
		var perm permanent
		if step.Attempts < s.maxAttempts && !errors.As(stepErr, &perm) {
			backoff = min(s.backoff<<(step.Attempts-1), 30*time.Second)
			return tx.Model(&Step{}).Where("run_id = ? AND position = ?", id, step.Position).Updates(map[string]any{
				"state": StepPending, "error": msg, "retry_at": now.Add(backoff), "duration_ms": time.Since(began).Milliseconds()}).Error
		}
		if err := tx.Model(&Step{}).Where("run_id = ? AND position = ?", id, step.Position).Updates(map[string]any{
			"state": StepFailed, "error": msg, "finished_at": now, "duration_ms": time.Since(began).Milliseconds()}).Error; err != nil {
			return err
		}
		runErr := clip(fmt.Sprintf("%s failed after %d attempts: %s", step.Name, step.Attempts, stepErr))
		if err := tx.Model(&Run{}).Where("id = ?", id).Updates(map[string]any{"state": StateFailed, "error": runErr, "updated_at": now}).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: r.TenantID, Actor: "system:provisioning", Action: "provisioning.failed", Target: r.TenantSlug,
			Detail: audit.Detail(map[string]any{"run_id": id, "step": step.Name, "attempts": step.Attempts, "error": msg})})
	})
	if err != nil {
		return false, err
	}
	if backoff > 0 {
		return sleep(ctx, backoff)
	}
	return false, nil
}

var errStopped = errors.New("provisioning: run no longer running")

func sleep(ctx context.Context, d time.Duration) (bool, error) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false, ctx.Err()
	case <-t.C:
		return true, nil
	}
}

// compensate undoes, in reverse order, every step of a cancelling run that did anything, then
// removes the tenant and marks the run cancelled. Each undo is idempotent: a compensation that
// fails half-way is retried by River from the start.
func (s *Service) compensate(ctx context.Context, id int64) error {
	gdb := s.db.App.WithContext(ctx)
	return gdb.Transaction(func(tx *gorm.DB) error {
		r, err := lockRun(tx, id)
		if err != nil {
			return err
		}
		if r.State != StateCancelling {
			return nil
		}
		var steps []Step
		if err := tx.Where("run_id = ? AND (state IN ? OR attempts > 0)", id, []string{StepDone, StepRunning, StepFailed}).Order("position DESC").Find(&steps).Error; err != nil {
			return err
		}
		if r.TenantID == nil {
			return errors.New("provisioning: cancelling run has no tenant")
		}
		tenantID := *r.TenantID
		undone := []string{}
		for _, st := range steps {
			note, err := s.undo(ctx, tx, r, st.Name)
			if err != nil {
				return fmt.Errorf("undo %s: %w", st.Name, err)
			}
			if err := tx.Model(&Step{}).Where("run_id = ? AND position = ?", id, st.Position).
				Updates(map[string]any{"state": StepCompensated, "note": note, "retry_at": nil}).Error; err != nil {
				return err
			}
			undone = append(undone, st.Name)
		}
		// Last, the tenant itself: its slug is free again. Rows hanging off it (quota limits,
		// settings, the keyset's evidence row) go with it; the run keeps slug and name.
		if err := tx.Exec("DELETE FROM tenantry.tenants WHERE id = ?", tenantID).Error; err != nil {
			return fmt.Errorf("remove tenant: %w", err)
		}
		now := s.now()
		if err := tx.Model(&Run{}).Where("id = ?", id).Updates(map[string]any{
			"state": StateCancelled, "finished_at": now, "updated_at": now, "admin_password_hash": nil}).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: "system:provisioning", Action: "provisioning.cancelled", Target: r.TenantSlug,
			Detail: audit.Detail(map[string]any{"run_id": id, "compensated": undone})})
	})
}

// runLockKey is the advisory lock a job holds while it works run id.
func runLockKey(id int64) int64 {
	h := fnv.New64a()
	fmt.Fprintf(h, "tenantry.provisioning.run.%d", id)
	return int64(h.Sum64())
}

// runActor is how the workflow signs what it does for run r.
func runActor(r Run) string { return "provisioning:run:" + strconv.FormatInt(r.ID, 10) }

// warnOnly passes on warnings and errors only.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h warnOnly) WithAttrs(as []slog.Attr) slog.Handler { return warnOnly{h.Handler.WithAttrs(as)} }

func (h warnOnly) WithGroup(name string) slog.Handler { return warnOnly{h.Handler.WithGroup(name)} }
