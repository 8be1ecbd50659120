package signup

import (
	"context"
	"time"

	"github.com/tenantry/tenantry/internal/provisioning"
)

// Provisioning adapts internal/provisioning to Provisioner.
type Provisioning struct{ Service *provisioning.Service }

// Start starts the run that makes the signup's tenant.
func (p Provisioning) Start(ctx context.Context, r ProvisionRequest) (int64, int64, error) {
	run, err := p.Service.Start(ctx, provisioning.Request{Name: r.Name, Slug: r.Slug, TemplateID: r.TemplateID,
		PlanKey: r.PlanKey, AdminEmail: r.AdminEmail, AdminPassword: r.AdminPassword, ParentID: r.ParentID, Actor: r.Actor})
	if err != nil {
		return 0, 0, err
	}
	var tid int64
	if run.TenantID != nil {
		tid = *run.TenantID
	}
	return run.ID, tid, nil
}

// Status reports the run's state and steps.
func (p Provisioning) Status(ctx context.Context, runID int64) (RunStatus, error) {
	run, err := p.Service.Run(ctx, runID)
	if err != nil {
		return RunStatus{}, err
	}
	st := RunStatus{State: run.State, Error: run.Error, Elapsed: run.Elapsed(time.Now())}
	for _, s := range run.Steps {
		st.Steps = append(st.Steps, StepStatus{Name: s.Name, State: s.State})
	}
	return st, nil
}
