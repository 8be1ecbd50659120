package tenantscope_test

import (
	"testing"
)

// BenchmarkFirstShared measures the plugin's cost on a primary-key read of a shared row. The
// plugin-free variants filter on tenant_id by hand, so both send the same query.
func BenchmarkFirstShared(b *testing.B) {
	tb := setup(b)
	for _, bc := range []struct {
		name string
		run  func() error
	}{
		{"without_plugin", func() error {
			var it item
			return tb.plain.WithContext(tb.ctxA).Where("tenant_id = ?", tb.a).First(&it, tb.aOne.ID).Error
		}},
		{"with_plugin", func() error {
			var it item
			return tb.scoped.WithContext(tb.ctxA).First(&it, tb.aOne.ID).Error
		}},
		{"per_schema_with_plugin", func() error {
			var p project
			return tb.scoped.WithContext(tb.ctxA).First(&p, tb.paOne.ID).Error
		}},
		// DryRun builds the statement without the round trip, isolating the plugin's CPU cost.
		{"dry_run_without_plugin", func() error {
			var it item
			return dry(tb.plain, tb.ctxA).Where("tenant_id = ?", tb.a).First(&it, tb.aOne.ID).Error
		}},
		{"dry_run_with_plugin", func() error {
			var it item
			return dry(tb.scoped, tb.ctxA).First(&it, tb.aOne.ID).Error
		}},
		{"dry_run_per_schema_with_plugin", func() error {
			var p project
			return dry(tb.scoped, tb.ctxA).First(&p, tb.paOne.ID).Error
		}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			for b.Loop() {
				if err := bc.run(); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
