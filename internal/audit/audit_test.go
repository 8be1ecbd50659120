package audit_test

import (
	"context"
	"errors"
	"os"
	"testing"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db/dbtest"
)

func TestMain(m *testing.M) { os.Exit(dbtest.Main(m)) }

func TestChainDetectsTampering(t *testing.T) {
	d := dbtest.Open(t)
	ctx := context.Background()
	for _, action := range []string{"a.one", "a.two", "a.three"} {
		err := d.App.Transaction(func(tx *gorm.DB) error {
			return audit.Record(tx, audit.Event{Actor: "tester", Action: action, Detail: audit.Detail(map[string]any{"b": 2, "a": 1})})
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if n, err := audit.Verify(ctx, d.App); err != nil || n != 3 {
		t.Fatalf("intact chain: %d, %v", n, err)
	}
	// A rolled-back change leaves no event.
	_ = d.App.Transaction(func(tx *gorm.DB) error {
		if err := audit.Record(tx, audit.Event{Actor: "tester", Action: "a.rolled_back"}); err != nil {
			return err
		}
		return errors.New("abort")
	})
	if n, _ := audit.Verify(ctx, d.App); n != 3 {
		t.Fatalf("after rollback: %d events, want 3", n)
	}
	// Someone with owner rights edits history: Verify names the event.
	if err := d.Owner.Exec("UPDATE tenantry.audit_events SET actor = 'mallory' WHERE action = 'a.two'").Error; err != nil {
		t.Fatal(err)
	}
	if _, err := audit.Verify(ctx, d.App); !errors.Is(err, audit.ErrChainBroken) {
		t.Fatalf("edited chain: %v, want ErrChainBroken", err)
	}
}
