package web

import (
	"context"
	"time"

	"github.com/tenantry/tenantry/internal/quota"
)

// apiQuotaExtras are the grants, burst and alert state of a dimension in GET /api/v1/quota.
type apiQuotaExtras struct {
	// EffectiveLimit is limit plus the active grants: what consumes may reach outside a burst window.
	EffectiveLimit int64           `json:"effective_limit"`
	Grants         []apiQuotaGrant `json:"grants"`
	Burst          apiQuotaBurst   `json:"burst"`
	Alerts         apiQuotaAlerts  `json:"alerts"`
}

type apiQuotaGrant struct {
	Amount   int64     `json:"amount"`
	StartsAt time.Time `json:"starts_at"`
	EndsAt   time.Time `json:"ends_at"`
	Reason   string    `json:"reason"`
	State    string    `json:"state"` // active or scheduled
}

type apiQuotaBurst struct {
	Percent       int        `json:"percent"`
	Amount        int64      `json:"amount"`
	WindowSeconds int64      `json:"window_seconds"`
	State         string     `json:"state"` // off, available, open, used
	StartedAt     *time.Time `json:"started_at"`
	ClosesAt      *time.Time `json:"closes_at"`
}

type apiQuotaAlerts struct {
	Thresholds []int `json:"thresholds"`
	Crossed    []int `json:"crossed"`
}

// quotaExtras loads, for every dimension of the tenant, its current grants and alert state.
func (s *Server) quotaExtras(ctx context.Context, tenantID int64) (func(quota.Limit) apiQuotaExtras, error) {
	grants, err := s.quotas.Grants(ctx, tenantID, 200)
	if err != nil {
		return nil, err
	}
	states, err := s.quotas.AlertStates(ctx, tenantID)
	if err != nil {
		return nil, err
	}
	now := time.Now()
	return func(l quota.Limit) apiQuotaExtras {
		x := apiQuotaExtras{EffectiveLimit: l.Effective, Grants: []apiQuotaGrant{}, Alerts: apiQuotaAlerts{Thresholds: states[l.Dimension.Key].Thresholds, Crossed: states[l.Dimension.Key].Crossed}}
		for _, g := range grants {
			if st := g.State(now); g.Dimension == l.Dimension.Key && (st == quota.GrantActive || st == quota.GrantScheduled) {
				x.Grants = append(x.Grants, apiQuotaGrant{Amount: g.Amount, StartsAt: g.StartsAt.UTC(), EndsAt: g.EndsAt.UTC(), Reason: g.Reason, State: st})
			}
		}
		b := l.Burst
		x.Burst = apiQuotaBurst{Percent: b.Percent, Amount: b.Amount, WindowSeconds: int64(b.Window.Seconds()), State: b.State}
		if !b.StartedAt.IsZero() {
			t := b.StartedAt.UTC()
			x.Burst.StartedAt = &t
		}
		if !b.ClosesAt.IsZero() {
			t := b.ClosesAt.UTC()
			x.Burst.ClosesAt = &t
		}
		return x
	}, nil
}
