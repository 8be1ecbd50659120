// Package jobs wires River, the durable job queue that lives in Tenantry's own PostgreSQL.
// Capabilities register their workers and periodic jobs; periodic jobs run on exactly one node.
package jobs

import (
	"context"
	"log/slog"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"

	"github.com/tenantry/tenantry/internal/db"
)

// Client is the River client the server runs.
type Client = river.Client[pgx.Tx]

// New returns a River client working the default queue on pool, with the given workers and
// periodic jobs. Start it with Start and stop it with Stop.
func New(pool *pgxpool.Pool, workers *river.Workers, periodic []*river.PeriodicJob, log *slog.Logger) (*Client, error) {
	return river.NewClient(riverpgxv5.New(pool), &river.Config{
		Schema:       db.Schema,
		Queues:       map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 20}},
		Workers:      workers,
		PeriodicJobs: periodic,
		// River reports routine queue statistics at info level every few seconds.
		Logger:     slog.New(warnOnly{log.Handler()}),
		JobTimeout: 10 * time.Minute,
	})
}

// warnOnly passes on warnings and errors only.
type warnOnly struct{ slog.Handler }

func (h warnOnly) Enabled(ctx context.Context, l slog.Level) bool {
	return l >= slog.LevelWarn && h.Handler.Enabled(ctx, l)
}

func (h warnOnly) WithAttrs(as []slog.Attr) slog.Handler { return warnOnly{h.Handler.WithAttrs(as)} }

func (h warnOnly) WithGroup(name string) slog.Handler { return warnOnly{h.Handler.WithGroup(name)} }
