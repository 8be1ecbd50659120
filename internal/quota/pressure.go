package quota

import (
	"context"

	"github.com/jackc/pgx/v5"
)

// Pressure is one tenant's usage of one dimension as the platform overview ranks it.
type Pressure struct {
	TenantID      int64
	Slug          string
	Name          string
	Dimension     string
	DimensionName string
	Unit          string
	Used          int64 // in the current period
	Soft          int64
	Hard          int64
	Grants        int64 // active now: Hard + Grants is the effective limit
}

// State is StateBlocked at or over the effective limit (hard + grants), StateSoft over the soft
// limit, else StateOK.
func (p Pressure) State() string {
	switch {
	case p.Used >= p.Hard+p.Grants:
		return StateBlocked
	case p.Used > p.Soft:
		return StateSoft
	}
	return StateOK
}

// Nearest ranks, across every tenant, the limits closest to their hard limit (usage in the
// current period only: a counter whose period has ended counts as zero until its next consume
// resets it), fullest first, at most n. Limits without usage are left out.
func (s *Service) Nearest(ctx context.Context, n int) ([]Pressure, error) {
	rows, err := s.db.AppPool.Query(ctx, `
		SELECT id, slug, name, dim, dim_name, unit, used, soft_limit, hard_limit, grants FROM (
			SELECT t.id, t.slug, t.name, d.key AS dim, d.name AS dim_name, d.unit, l.soft_limit, l.hard_limit,
			       COALESCE(g.grants, 0) AS grants,
			       CASE WHEN d.reset_period = 'none'
			              OR l.period_start >= date_trunc(CASE d.reset_period WHEN 'hourly' THEN 'hour'
			                                             WHEN 'daily' THEN 'day' ELSE 'month' END,
			                                           COALESCE($2::timestamptz, now()) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC'
			            THEN l.used ELSE 0 END AS used
			  FROM tenantry.quota_limits l
			  JOIN tenantry.tenants t ON t.id = l.tenant_id
			  JOIN tenantry.quota_dimensions d ON d.key = l.dimension
			  LEFT JOIN (SELECT tenant_id, dimension, sum(amount)::bigint AS grants FROM tenantry.quota_grants
			              WHERE revoked_at IS NULL AND starts_at <= COALESCE($2::timestamptz, now())
			                AND ends_at > COALESCE($2::timestamptz, now()) GROUP BY 1, 2) g
			         ON g.tenant_id = l.tenant_id AND g.dimension = l.dimension
			 WHERE l.hard_limit > 0) x
		 WHERE used > 0
		 ORDER BY used::float8 / (hard_limit + grants) DESC, id, dim
		 LIMIT $1`, n, s.sqlNow())
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(r pgx.CollectableRow) (Pressure, error) {
		var p Pressure
		err := r.Scan(&p.TenantID, &p.Slug, &p.Name, &p.Dimension, &p.DimensionName, &p.Unit, &p.Used, &p.Soft, &p.Hard, &p.Grants)
		return p, err
	})
}
