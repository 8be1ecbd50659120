package tenantauth

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

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
// the reason as recorded. Access must be granted only when it succeeds. Both trails get their
// event in one transaction.
func (s *Service) StartActing(ctx context.Context, tenantID int64, platformEmail, reason string) (string, error) {
	t, err := s.Tenant(ctx, tenantID)
	if err != nil {
		return "", err
	}
	reason, rerr := ValidateReason(reason)
	if err := CheckOpen(t); err != nil {
		return "", err
	}
	if rerr != nil {
		return "", rerr
	}
	detail := audit.Detail(map[string]any{"reason": reason, "platform_user": platformEmail})
	err = s.recordBoth(ctx, t, platformEmail, "act_as.started", "tenant.act_as_started", detail)
	return reason, err
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
// tenantID, started at started for reason, in both trails. It works whatever the tenant's state.
func (s *Service) StopActing(ctx context.Context, tenantID int64, platformEmail, reason, how string, started time.Time) error {
	t, err := s.Tenant(ctx, tenantID)
	if err != nil {
		return err
	}
	detail := map[string]any{"reason": reason, "platform_user": platformEmail, "ended": how}
	if !started.IsZero() {
		detail["duration_seconds"] = int64(time.Since(started).Seconds())
	}
	return s.recordBoth(ctx, t, platformEmail, "act_as.stopped", "tenant.act_as_stopped", audit.Detail(detail))
}
