package mail

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"
)

// Transport hands messages to a mail server. Deliver returns one error per message, in order;
// nil means the server accepted that message.
type Transport interface {
	Deliver(ctx context.Context, msgs []Queued) []error
}

// Delivery defaults.
const (
	// DefaultBatch is how many due messages one run claims.
	DefaultBatch = 25
	// DefaultMaxAttempts is how many tries a message gets before it is marked failed.
	DefaultMaxAttempts = 8
	// DefaultLease is how long a claimed message is hidden from other workers. A worker that
	// dies after claiming (before or after sending) leaves the message pending; it is tried
	// again once the lease runs out. It must be longer than a batch can take to send.
	DefaultLease = 5 * time.Minute
	// DeliverInterval is how often the periodic delivery job runs.
	DeliverInterval = 5 * time.Second
)

// Deliverer moves due pending messages from the outbox to a Transport.
//
// Delivery is at-least-once. Claiming a batch is one short transaction that bumps each row's
// attempts and pushes its next_attempt_at out by the lease (FOR UPDATE SKIP LOCKED, so two
// workers never claim the same row); the messages are then sent outside any transaction and
// each row is marked sent (or its error recorded) afterwards. If the process dies between the
// server accepting a message and the row being marked sent, the row is still pending and is
// sent again when its lease expires: the recipient may get a duplicate (with the same
// Message-ID), but a message is never lost. The other order (mark, then send) would lose
// messages on a crash, which is worse for invitations and verification links.
type Deliverer struct {
	db          *gorm.DB
	transport   Transport
	log         *slog.Logger
	Batch       int
	MaxAttempts int
	Lease       time.Duration
	// Backoff is the wait before the next try after the n-th failed attempt.
	Backoff func(attempts int) time.Duration
}

// NewDeliverer returns a Deliverer over the outbox in db (the app role). transport may be
// nil: then nothing is sent and messages stay pending.
func NewDeliverer(db *gorm.DB, transport Transport, log *slog.Logger) *Deliverer {
	if log == nil {
		log = slog.Default()
	}
	return &Deliverer{db: db, transport: transport, log: log, Batch: DefaultBatch,
		MaxAttempts: DefaultMaxAttempts, Lease: DefaultLease, Backoff: Backoff}
}

// Configured reports whether a transport is set (SMTP configured).
func (d *Deliverer) Configured() bool { return d.transport != nil }

// Backoff is 30 s doubled per failed attempt, at most one hour: 30 s, 1 min, 2 min, … so the
// default eight attempts span about an hour and a half.
func Backoff(attempts int) time.Duration {
	if attempts < 1 {
		attempts = 1
	}
	d := 30 * time.Second
	for i := 1; i < attempts && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// Result counts what one run did.
type Result struct {
	Claimed, Sent, Retrying, Failed int
}

// Claim takes up to n due pending messages for this worker: it increments their attempts and
// hides them for the lease. Concurrent claimers get disjoint sets.
func (d *Deliverer) Claim(ctx context.Context, n int) ([]Queued, error) {
	var rows []Queued
	err := d.db.WithContext(ctx).Raw(`UPDATE tenantry.mail_outbox o
		SET attempts = o.attempts + 1, next_attempt_at = now() + make_interval(secs => ?)
		WHERE o.id IN (SELECT id FROM tenantry.mail_outbox
			WHERE state = 'pending' AND next_attempt_at <= now()
			ORDER BY next_attempt_at, id LIMIT ? FOR UPDATE SKIP LOCKED)
		RETURNING o.*`, d.Lease.Seconds(), n).Scan(&rows).Error
	if err != nil {
		return nil, fmt.Errorf("mail: claim: %w", err)
	}
	return rows, nil
}

// RunOnce claims due messages batch by batch and delivers them until none are due (or ctx
// ends). Without a transport it does nothing.
func (d *Deliverer) RunOnce(ctx context.Context) (Result, error) {
	var total Result
	if d.transport == nil {
		return total, nil
	}
	for ctx.Err() == nil {
		rows, err := d.Claim(ctx, d.Batch)
		if err != nil {
			return total, err
		}
		if len(rows) == 0 {
			break
		}
		total.Claimed += len(rows)
		errs := d.transport.Deliver(ctx, rows)
		for i, q := range rows {
			var sendErr error
			if i < len(errs) {
				sendErr = errs[i]
			} else {
				sendErr = errors.New("transport gave no answer for this message")
			}
			// Record the outcome even when ctx was cancelled mid-batch: the server's answer is known.
			mctx := context.WithoutCancel(ctx)
			if sendErr == nil {
				if err := d.markSent(mctx, q.ID); err != nil {
					return total, err
				}
				total.Sent++
				continue
			}
			failed, err := d.markFailedAttempt(mctx, q, sendErr)
			if err != nil {
				return total, err
			}
			if failed {
				total.Failed++
				d.log.Warn("mail: giving up on a message", "id", q.ID, "kind", q.Kind, "attempts", q.Attempts, "err", sendErr)
			} else {
				total.Retrying++
				d.log.Info("mail: delivery failed; will retry", "id", q.ID, "kind", q.Kind, "attempts", q.Attempts, "err", sendErr)
			}
		}
		if len(rows) < d.Batch {
			break
		}
	}
	return total, nil
}

func (d *Deliverer) markSent(ctx context.Context, id int64) error {
	err := d.db.WithContext(ctx).Exec(`UPDATE tenantry.mail_outbox
		SET state = 'sent', sent_at = now(), last_error = '' WHERE id = ? AND state = 'pending'`, id).Error
	if err != nil {
		return fmt.Errorf("mail: mark %d sent: %w", id, err)
	}
	return nil
}

// markFailedAttempt stores the error and schedules the next try, or marks the message failed
// when it has had its attempts. It reports whether the message is now failed.
func (d *Deliverer) markFailedAttempt(ctx context.Context, q Queued, sendErr error) (bool, error) {
	failed := q.Attempts >= d.MaxAttempts
	state := StatePending
	if failed {
		state = StateFailed
	}
	msg := sendErr.Error()
	if len(msg) > 2000 {
		msg = msg[:2000]
	}
	err := d.db.WithContext(ctx).Exec(`UPDATE tenantry.mail_outbox
		SET state = ?, last_error = ?, next_attempt_at = now() + make_interval(secs => ?)
		WHERE id = ? AND state = 'pending'`, state, msg, d.Backoff(q.Attempts).Seconds(), q.ID).Error
	if err != nil {
		return false, fmt.Errorf("mail: record failure of %d: %w", q.ID, err)
	}
	return failed, nil
}

// DeliverArgs is the periodic delivery job.
type DeliverArgs struct{}

// Kind names the job for River.
func (DeliverArgs) Kind() string { return "mail.deliver" }

// DeliverWorker runs the Deliverer.
type DeliverWorker struct {
	river.WorkerDefaults[DeliverArgs]
	Deliverer *Deliverer
}

// Work delivers every due message.
func (w *DeliverWorker) Work(ctx context.Context, _ *river.Job[DeliverArgs]) error {
	_, err := w.Deliverer.RunOnce(ctx)
	return err
}

// Timeout bounds one run; claimed but unsent messages come back after their lease.
func (w *DeliverWorker) Timeout(*river.Job[DeliverArgs]) time.Duration { return 2 * time.Minute }

// DeliverPeriodic runs delivery every DeliverInterval, on one node.
func DeliverPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(DeliverInterval),
		func() (river.JobArgs, *river.InsertOpts) { return DeliverArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}
