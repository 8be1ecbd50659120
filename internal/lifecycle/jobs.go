package lifecycle

import (
	"context"
	"database/sql"
	"time"

	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverdatabasesql"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/db"
)

// jobInserter inserts River jobs inside a GORM transaction.
type jobInserter = *river.Client[*sql.Tx]

// EnableJobs makes RequestExport enqueue an ExportArgs job in its transaction, so an export starts
// at once instead of at the next tick. The server's River client works it.
func (s *Service) EnableJobs() error {
	c, err := river.NewClient(riverdatabasesql.New(nil), &river.Config{Schema: db.Schema})
	if err != nil {
		return err
	}
	s.jobs = c
	return nil
}

func (s *Service) enqueueExport(ctx context.Context, tx *gorm.DB, exportID int64) error {
	if s.jobs == nil {
		return nil // the periodic tick runs pending exports
	}
	sqlTx, err := db.SQLTx(tx)
	if err != nil {
		return err
	}
	_, err = s.jobs.InsertTx(ctx, sqlTx, ExportArgs{ExportID: exportID}, nil)
	return err
}

// ExportArgs asks for export ExportID to be built.
type ExportArgs struct {
	ExportID int64 `json:"export_id"`
}

// Kind names the job in River.
func (ExportArgs) Kind() string { return "lifecycle.export" }

// ExportWorker builds export archives. A failed attempt is retried by River from scratch.
type ExportWorker struct {
	river.WorkerDefaults[ExportArgs]
	Service *Service
}

// Timeout allows for tenants with much data.
func (w *ExportWorker) Timeout(*river.Job[ExportArgs]) time.Duration { return time.Hour }

// Work builds the archive.
func (w *ExportWorker) Work(ctx context.Context, job *river.Job[ExportArgs]) error {
	return w.Service.RunExport(ctx, job.Args.ExportID)
}

// TickArgs asks for the lifecycle's periodic step.
type TickArgs struct{}

// Kind names the job in River.
func (TickArgs) Kind() string { return "lifecycle.tick" }

// TickWorker advances tenants whose dates have passed, sends due messages and resumes exports.
type TickWorker struct {
	river.WorkerDefaults[TickArgs]
	Service *Service
}

// Timeout allows a tick to run a crashed export again.
func (w *TickWorker) Timeout(*river.Job[TickArgs]) time.Duration { return time.Hour }

// Work runs one tick.
func (w *TickWorker) Work(ctx context.Context, _ *river.Job[TickArgs]) error {
	return w.Service.Tick(ctx)
}

// TickPeriodic runs the tick every minute, on one node.
func TickPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Minute),
		func() (river.JobArgs, *river.InsertOpts) { return TickArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}
