package tenantauth

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// A platform admin may act as a tenant admin, but only visibly and on the record: with a reason,
// for a limited time, and with the start and the end written to both the platform's and the
// tenant's audit trails.

// ActAsMaxDuration bounds an act-as session; after it the admin must start again, with a reason.
const ActAsMaxDuration = time.Hour

// Reason length limits for acting as a tenant admin.
const (
	MinReasonLength = 10
	MaxReasonLength = 500
)

// ActingActor is how a platform user appears in a tenant's audit trail while acting as its admin.
func ActingActor(platformEmail string) string { return "platform:" + platformEmail }

// ValidateReason returns the trimmed reason, or a validation error keyed "reason".
func ValidateReason(reason string) (string, error) {
	reason = strings.Join(strings.Fields(reason), " ")
	n := len([]rune(reason))
	switch {
	case n == 0:
		return "", validation.Errors{"reason": "Say why you need to act as this tenant's admin, for example a ticket number and what you will do."}
	case n < MinReasonLength:
		return "", validation.Errors{"reason": fmt.Sprintf("Give a reason of at least %d characters: a ticket number and what you will do.", MinReasonLength)}
	case n > MaxReasonLength:
		return "", validation.Errors{"reason": fmt.Sprintf("Use at most %d characters.", MaxReasonLength)}
	}
	return reason, nil
}

// StartActing records that platform admin platformEmail starts acting as an admin of tenant
// tenantID, for reason, in the tenant's trail and in the platform's. It refuses a closed tenant
// (*ClosedError) and a missing or too short reason (validation error on "reason"), and returns
// the reason as recorded and the start time (to the microsecond: it names the session in both
// trails), which the session keeps and StopActing is given
// back. Access must be granted only when it succeeds. Both trails get their event in one
// transaction.
func (s *Service) StartActing(ctx context.Context, tenantID int64, platformEmail, reason string) (string, time.Time, error) {
	t, err := s.Tenant(ctx, tenantID)
	if err != nil {
		return "", time.Time{}, err
	}
	reason, rerr := ValidateReason(reason)
	if err := CheckOpen(t); err != nil {
		return "", time.Time{}, err
	}
	if rerr != nil {
		return "", time.Time{}, rerr
	}
	started := time.Now().UTC().Truncate(time.Microsecond)
	detail := audit.Detail(map[string]any{"reason": reason, "platform_user": platformEmail, "started_at": started.UnixMicro()})
	err = s.recordBoth(ctx, t, platformEmail, "act_as.started", "tenant.act_as_started", detail)
	return reason, started, err
}

// recordBoth writes one event to the tenant's trail and one to the platform's, in one
// transaction: both are recorded or neither.
func (s *Service) recordBoth(ctx context.Context, t tenant.Tenant, platformEmail, tenantAction, platformAction string, detail json.RawMessage) error {
	return s.db.InTenant(ctx, t.ID, func(tx *gorm.DB) error {
		if err := audit.RecordTenant(tx, audit.TenantEvent{Actor: ActingActor(platformEmail), Action: tenantAction, Target: "tenant admin", Detail: detail}); err != nil {
			return err
		}
		return db.AsPlatform(tx, func(ptx *gorm.DB) error {
			return audit.Record(ptx, audit.Event{TenantID: &t.ID, Actor: platformEmail, Action: platformAction, Target: t.Slug, Detail: detail})
		})
	})
}

// How an act-as session ended, recorded with the stop events.
const (
	EndStopped = "stopped" // the admin pressed Stop
	EndExpired = "expired" // ActAsMaxDuration passed
	EndRevoked = "revoked" // the admin's platform session or rights went away meanwhile
)

// StopActing records the end of platform admin platformEmail's act-as session in tenant
// tenantID, started at started for reason, in both trails. It works whatever the tenant's state,
// and records each session's end once: a session already recorded as ended (say by
// SweepAbandonedActAs before its admin came back) is left as it is.
func (s *Service) StopActing(ctx context.Context, tenantID int64, platformEmail, reason, how string, started time.Time) error {
	return s.stopActing(ctx, tenantID, platformEmail, reason, how, started, time.Now())
}

func (s *Service) stopActing(ctx context.Context, tenantID int64, platformEmail, reason, how string, started, now time.Time) error {
	t, err := s.Tenant(ctx, tenantID)
	if err != nil {
		return err
	}
	detail := map[string]any{"reason": reason, "platform_user": platformEmail, "ended": how}
	if !started.IsZero() {
		detail["started_at"] = started.UnixMicro()
		detail["duration_seconds"] = int64(min(now.Sub(started), ActAsMaxDuration).Seconds())
		var n int64
		err := s.db.App.WithContext(ctx).Model(&audit.Event{}).
			Where("tenant_id = ? AND actor = ? AND action = ? AND detail->>'started_at' = ?",
				t.ID, platformEmail, "tenant.act_as_stopped", fmt.Sprint(started.UnixMicro())).Count(&n).Error
		if err != nil || n > 0 {
			return err
		}
	}
	return s.recordBoth(ctx, t, platformEmail, "act_as.stopped", "tenant.act_as_stopped", audit.Detail(detail))
}

// actAsSweepWindow is how far back SweepAbandonedActAs looks for sessions nobody ended.
const actAsSweepWindow = 30 * 24 * time.Hour

// SweepAbandonedActAs records the end of act-as sessions that expired without their admin
// coming back (a closed browser records nothing otherwise), as of now, and returns how many it
// ended. The periodic ActAsSweepWorker runs it.
func (s *Service) SweepAbandonedActAs(ctx context.Context, now time.Time) (int, error) {
	type open struct {
		TenantID int64
		Actor    string
		Reason   string
		Started  int64
	}
	var sessions []open
	err := s.db.App.WithContext(ctx).Raw(`
		SELECT st.tenant_id, st.actor, st.detail->>'reason' AS reason, (st.detail->>'started_at')::bigint AS started
		  FROM tenantry.audit_events st
		 WHERE st.action = 'tenant.act_as_started' AND st.detail->>'started_at' IS NOT NULL
		   AND st.created_at > ? AND st.created_at < ?
		   AND NOT EXISTS (SELECT 1 FROM tenantry.audit_events sp
		                    WHERE sp.action = 'tenant.act_as_stopped' AND sp.tenant_id = st.tenant_id
		                      AND sp.actor = st.actor AND sp.detail->>'started_at' = st.detail->>'started_at')
		 ORDER BY st.id`, now.Add(-actAsSweepWindow), now.Add(-ActAsMaxDuration)).Scan(&sessions).Error
	if err != nil {
		return 0, fmt.Errorf("tenantauth: find abandoned act-as sessions: %w", err)
	}
	for i, o := range sessions {
		if err := s.stopActing(ctx, o.TenantID, o.Actor, o.Reason, EndExpired, time.UnixMicro(o.Started), now); err != nil {
			return i, err
		}
	}
	return len(sessions), nil
}

// ActAsSweepArgs asks for abandoned act-as sessions to be recorded as ended.
type ActAsSweepArgs struct{}

// Kind names the job in River.
func (ActAsSweepArgs) Kind() string { return "tenantauth.sweep_act_as" }

// ActAsSweepWorker runs SweepAbandonedActAs.
type ActAsSweepWorker struct {
	river.WorkerDefaults[ActAsSweepArgs]
	Service *Service
}

// Work ends the act-as sessions that expired unvisited.
func (w *ActAsSweepWorker) Work(ctx context.Context, _ *river.Job[ActAsSweepArgs]) error {
	_, err := w.Service.SweepAbandonedActAs(ctx, time.Now())
	return err
}

// ActAsSweepPeriodic runs the sweep every ten minutes.
func ActAsSweepPeriodic() *river.PeriodicJob {
	return river.NewPeriodicJob(river.PeriodicInterval(10*time.Minute),
		func() (river.JobArgs, *river.InsertOpts) { return ActAsSweepArgs{}, nil },
		&river.PeriodicJobOpts{RunOnStart: true})
}
