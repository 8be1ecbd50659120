package web_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/web"
)

// TestConsumeAcrossServers: two server instances, each with its own connection pools (as two
// nodes would have), take consumes for the same tenants at once, past the hard limits. The total
// granted never exceeds a limit and used equals what was granted, because the check and the
// consumption are one guarded statement in the shared database, not state held by a node.
// (Both servers live in this test's OS process; they share nothing but the database.)
func TestConsumeAcrossServers(t *testing.T) {
	b := setup(t)
	other, err := web.New(context.Background(), web.Config{DB: dbtest.Open(t), Log: dbtest.Logger(t)})
	if err != nil {
		t.Fatal(err)
	}
	nodes := []string{b.ts.URL, newTestServer(t, other).URL}
	type target struct {
		id      int64
		key     string
		hard    int64
		granted atomic.Int64
	}
	var targets []*target
	for _, hard := range []int64{7, 150, 400} {
		tn, key := b.quotaTenant(t, hard/2, hard)
		targets = append(targets, &target{id: tn.ID, key: key, hard: hard})
	}
	var wg sync.WaitGroup
	var denied atomic.Int64
	for w := range 48 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 25 {
				tg := targets[(w+i)%len(targets)]
				amount := int64(1 + (w*7+i)%4)
				body := fmt.Sprintf(`{"dimension":"compute_vcpu_hours","amount":%d,"idempotency_key":"n%d-%d"}`, amount, w, i)
				req, _ := http.NewRequest(http.MethodPost, nodes[(w+i)%2]+"/api/v1/quota/consume", strings.NewReader(body))
				req.Header.Set("Content-Type", "application/json")
				req.Header.Set("Authorization", "Bearer "+tg.key)
				res, err := http.DefaultClient.Do(req)
				if err != nil {
					t.Error(err)
					return
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				switch res.StatusCode {
				case http.StatusOK:
					tg.granted.Add(amount)
				case http.StatusTooManyRequests:
					denied.Add(1)
				default:
					t.Errorf("status %d", res.StatusCode)
					return
				}
			}
		}()
	}
	wg.Wait()
	if denied.Load() == 0 {
		t.Fatal("nothing was denied: the limits were not reached")
	}
	for _, tg := range targets {
		if used, g := b.usedOf(t, tg.id, "compute_vcpu_hours"), tg.granted.Load(); used != g || g > tg.hard {
			t.Errorf("tenant %d: used %d, granted %d, hard %d", tg.id, used, g, tg.hard)
		}
	}
}
