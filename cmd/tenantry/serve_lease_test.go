package main

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/apikeys"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/tenant"
)

// TestTwoServersWithLeasesKillAndShutdown is TestTwoServersNeverOverGrantAndSurviveAKill with
// every consume served from leases (TENANTRY_QUOTA_LEASE_THRESHOLD=0): both nodes hold leases of
// the tenant, one is SIGKILLed holding its lease, the survivor reconciles it before refusing
// anything, and the allowance is used up exactly. Then the survivor gets SIGTERM and returns its
// own leases on the way out: no lease stays open and the counter equals what was granted.
func TestTwoServersWithLeasesKillAndShutdown(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t)
	masterFile := filepath.Join(t.TempDir(), "master.key")
	if err := keys.GenerateMasterKeyFile(masterFile); err != nil {
		t.Fatal(err)
	}
	tn, err := tenant.NewService(d, dbtest.Logger(t)).Create(ctx, "test", tenant.NewTenant{Slug: "two-nodes-leased", Name: "Two nodes, leased", PlanKey: "enterprise"})
	if err != nil {
		t.Fatal(err)
	}
	issued, err := apikeys.NewService(d).Create(ctx, "test", tn.ID, "load", nil)
	if err != nil {
		t.Fatal(err)
	}
	const hard = 3_000
	if _, err := quota.NewService(d).SetLimit(ctx, "test", tn.ID, "api_requests", hard/2, hard); err != nil {
		t.Fatal(err)
	}
	env := []string{"DATABASE_URL=" + dbtest.URL(t), "TENANTRY_MASTER_KEY_FILE=" + masterFile, "TENANTRY_QUOTA_LEASE_THRESHOLD=0"}
	a, b := startServer(t, env), startServer(t, env)

	var (
		granted, retried, seq atomic.Int64
		killOnce              sync.Once
		mu                    sync.Mutex
		firstErr              error
	)
	var wg sync.WaitGroup
	for c := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 20 * time.Second}
			for denials := 0; denials < 5; {
				n := seq.Add(1)
				idem := fmt.Sprintf("leased-%d", n)
				amount := n%4 + 1
				target := a.url
				if (int64(c)+n)%2 == 0 {
					target = b.url
				}
				if n == hard/8 {
					killOnce.Do(a.kill)
				}
				ans, ok, err := consume(client, target, issued.FullKey, idem, amount)
				if err == nil && !ok {
					retried.Add(1)
					ans, ok, err = consume(client, b.url, issued.FullKey, idem, amount)
					if err == nil && !ok {
						err = fmt.Errorf("no answer from the surviving server for %s", idem)
					}
				}
				if err != nil {
					mu.Lock()
					if firstErr == nil {
						firstErr = err
					}
					mu.Unlock()
					return
				}
				if ans.Allowed {
					granted.Add(amount)
				} else {
					denials++
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("%v\nserver B:\n%s", firstErr, b.logs)
	}
	var nodes, leases, reconciled int64
	if err := d.OwnerPool.QueryRow(ctx, `SELECT count(DISTINCT node_id), count(*), count(*) FILTER (WHERE reconciled)
		FROM tenantry.quota_leases WHERE tenant_id = $1`, tn.ID).Scan(&nodes, &leases, &reconciled); err != nil {
		t.Fatal(err)
	}
	// An orderly stop returns the survivor's leases.
	if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-b.done:
	case <-time.After(25 * time.Second):
		t.Fatalf("server B did not stop after SIGTERM:\n%s", b.logs)
	}
	var used, allowedSum, open int64
	if err := d.OwnerPool.QueryRow(ctx, `SELECT used FROM tenantry.quota_limits WHERE tenant_id = $1 AND dimension = 'api_requests'`, tn.ID).Scan(&used); err != nil {
		t.Fatal(err)
	}
	if err := d.OwnerPool.QueryRow(ctx, `SELECT coalesce(sum(amount), 0) FROM tenantry.quota_consumptions WHERE tenant_id = $1 AND allowed`, tn.ID).Scan(&allowedSum); err != nil {
		t.Fatal(err)
	}
	if err := d.OwnerPool.QueryRow(ctx, `SELECT count(*) FROM tenantry.quota_leases WHERE tenant_id = $1 AND returned_at IS NULL`, tn.ID).Scan(&open); err != nil {
		t.Fatal(err)
	}
	t.Logf("granted %d of %d; %d calls retried after the kill; %d leases from %d nodes, %d reconciled", granted.Load(), hard, retried.Load(), leases, nodes, reconciled)
	switch {
	case granted.Load() > hard:
		t.Fatalf("over-granted: %d > hard limit %d", granted.Load(), hard)
	case used != granted.Load() || allowedSum != granted.Load() || open != 0:
		t.Fatalf("counter %d, recorded %d, open leases %d, but clients were granted %d", used, allowedSum, open, granted.Load())
	case granted.Load() < hard-4:
		t.Fatalf("stopped at %d, well below the limit %d", granted.Load(), hard)
	case nodes != 2 || retried.Load() == 0:
		t.Fatalf("leases from %d nodes, %d calls retried: the test did not exercise two leasing nodes and a kill", nodes, retried.Load())
	}
}
