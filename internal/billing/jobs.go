package billing

import (
	"context"
	"time"

	"github.com/riverqueue/river"
)

// InvoiceArgs asks for the previous month's invoices to be generated.
type InvoiceArgs struct{}

// Kind names the job in River.
func (InvoiceArgs) Kind() string { return "billing.monthly_invoices" }

// InvoiceWorker generates the invoices of the month before the one the job runs in. Generate is
// idempotent, so a retry, a second node or a restart never produces a second invoice.
type InvoiceWorker struct {
	river.WorkerDefaults[InvoiceArgs]
	Service *Service
}

// Work generates last month's invoices.
func (w *InvoiceWorker) Work(ctx context.Context, _ *river.Job[InvoiceArgs]) error {
	_, err := w.Service.Generate(ctx, "system:billing", PreviousMonth(w.Service.now()))
	return err
}

// MonthlySchedule fires at 00:10 UTC on the first day of each month.
type MonthlySchedule struct{}

// Next is the first of the month after t's, at 00:10 UTC.
func (MonthlySchedule) Next(t time.Time) time.Time {
	return MonthStart(t).AddDate(0, 1, 0).Add(10 * time.Minute)
}

// InvoicePeriodic runs the monthly invoice job on the first of each month, and once when the
// server starts (so a server that was down on the first catches up; it is idempotent).
func InvoicePeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(MonthlySchedule{},
		func() (river.JobArgs, *river.InsertOpts) { return InvoiceArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}

// OverdueArgs asks for invoices past their due date to be marked overdue.
type OverdueArgs struct{}

// Kind names the job in River.
func (OverdueArgs) Kind() string { return "billing.overdue" }

// OverdueWorker marks issued invoices overdue once their due date has passed.
type OverdueWorker struct {
	river.WorkerDefaults[OverdueArgs]
	Service *Service
}

// Work marks the invoices due before today overdue.
func (w *OverdueWorker) Work(ctx context.Context, _ *river.Job[OverdueArgs]) error {
	_, err := w.Service.MarkOverdue(ctx)
	return err
}

// OverduePeriodic runs the overdue sweep every hour, on one node.
func OverduePeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(time.Hour),
		func() (river.JobArgs, *river.InsertOpts) { return OverdueArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}
