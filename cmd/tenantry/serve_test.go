package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
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

// childEnv makes the test binary act as the tenantry command (see TestMain), so these tests run
// real server processes without building anything.
const childEnv = "TENANTRY_TEST_AS_COMMAND"

func TestMain(m *testing.M) {
	if os.Getenv(childEnv) == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(dbtest.Main(m))
}

// server is a `tenantry serve` process of the test.
type server struct {
	t    *testing.T
	url  string
	cmd  *exec.Cmd
	logs *bytes.Buffer
	done chan struct{}
}

func startServer(t *testing.T, env []string) *server {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	s := &server{t: t, url: "http://" + addr, logs: &bytes.Buffer{}, done: make(chan struct{})}
	s.cmd = exec.Command(os.Args[0], "serve")
	s.cmd.Env = append(os.Environ(), append(env, childEnv+"=1", "TENANTRY_ADDR="+addr, "TENANTRY_LOG_LEVEL=warn")...)
	s.cmd.Stdout, s.cmd.Stderr = s.logs, s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.cmd.Wait(); close(s.done) }()
	t.Cleanup(func() { s.kill() })
	deadline := time.Now().Add(30 * time.Second)
	for {
		res, err := http.Get(s.url + "/readyz")
		if err == nil {
			res.Body.Close()
			if res.StatusCode == http.StatusOK {
				return s
			}
		}
		select {
		case <-s.done:
			t.Fatalf("server exited before it was ready:\n%s", s.logs)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("server not ready after 30 s:\n%s", s.logs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// kill ends the process at once, as a crash or an OOM kill would.
func (s *server) kill() {
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	<-s.done
}

type consumeAnswer struct {
	Allowed bool  `json:"allowed"`
	Used    int64 `json:"used"`
	Limit   int64 `json:"limit"`
}

// consume posts one consumption; ok is false when no answer arrived (the outcome is unknown).
func consume(client *http.Client, base, key, idem string, amount int64) (consumeAnswer, bool, error) {
	body, _ := json.Marshal(map[string]any{"dimension": "api_requests", "amount": amount, "idempotency_key": idem})
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/quota/consume", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	req.Header.Set("Content-Type", "application/json")
	res, err := client.Do(req)
	if err != nil {
		return consumeAnswer{}, false, nil
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	if res.StatusCode != http.StatusOK && res.StatusCode != http.StatusTooManyRequests {
		return consumeAnswer{}, false, fmt.Errorf("status %d: %s", res.StatusCode, b)
	}
	var a consumeAnswer
	if err := json.Unmarshal(b, &a); err != nil {
		return a, false, fmt.Errorf("%v: %s", err, b)
	}
	return a, true, nil
}

// TestTwoServersNeverOverGrantAndSurviveAKill runs two server processes on one database, drives
// consumption through both from many clients until the hard limit is reached, and kills one of
// them with SIGKILL halfway. Calls whose answer was lost in the kill are retried, with the same
// idempotency key, on the other server. In the end the units granted never exceed the limit, the
// database's counter equals what was granted (nothing lost, nothing counted twice), and every
// retried call got the answer of its first attempt or its first and only execution.
func TestTwoServersNeverOverGrantAndSurviveAKill(t *testing.T) {
	ctx := context.Background()
	d := dbtest.Open(t)
	masterFile := filepath.Join(t.TempDir(), "master.key")
	if err := keys.GenerateMasterKeyFile(masterFile); err != nil {
		t.Fatal(err)
	}
	tn, err := tenant.NewService(d, dbtest.Logger(t)).Create(ctx, "test", tenant.NewTenant{Slug: "two-nodes", Name: "Two nodes", PlanKey: "enterprise"})
	if err != nil {
		t.Fatal(err)
	}
	issued, err := apikeys.NewService(d).Create(ctx, "test", tn.ID, "load", nil)
	if err != nil {
		t.Fatal(err)
	}
	const hard = 4_000
	if _, err := quota.NewService(d).SetLimit(ctx, "test", tn.ID, "api_requests", hard/2, hard); err != nil {
		t.Fatal(err)
	}
	env := []string{"DATABASE_URL=" + dbtest.URL(t), "TENANTRY_MASTER_KEY_FILE=" + masterFile}
	a, b := startServer(t, env), startServer(t, env)

	const clients = 24
	var (
		granted, answered, retried atomic.Int64
		seq                        atomic.Int64
		killOnce                   sync.Once
		mu                         sync.Mutex
		firstErr                   error
	)
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	var wg sync.WaitGroup
	for c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Timeout: 20 * time.Second}
			denials := 0
			for denials < 5 {
				n := seq.Add(1)
				idem := fmt.Sprintf("load-%d", n)
				amount := n%4 + 1
				target := a.url
				if (int64(c)+n)%2 == 0 {
					target = b.url
				}
				if n == hard/6 { // about halfway through the limit
					killOnce.Do(a.kill)
				}
				ans, ok, err := consume(client, target, issued.FullKey, idem, amount)
				if err != nil {
					fail(err)
					return
				}
				if !ok { // no answer from the killed server: ask the survivor, same key
					retried.Add(1)
					ans, ok, err = consume(client, b.url, issued.FullKey, idem, amount)
					if err != nil || !ok {
						fail(fmt.Errorf("retry of %s on the surviving server: ok=%v err=%v", idem, ok, err))
						return
					}
				}
				answered.Add(1)
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
		t.Fatalf("%v\nserver A:\n%s\nserver B:\n%s", firstErr, a.logs, b.logs)
	}
	// A restarted node carries on with the same database.
	a = startServer(t, env)
	if ans, ok, err := consume(http.DefaultClient, a.url, issued.FullKey, "after-restart", 1); err != nil || !ok || (ans.Allowed && granted.Load()+1 > hard) {
		t.Fatalf("after restart: %+v ok=%v err=%v", ans, ok, err)
	} else if ans.Allowed {
		granted.Add(1)
	}

	var used, allowedSum int64
	if err := d.OwnerPool.QueryRow(ctx, `SELECT used FROM tenantry.quota_limits WHERE tenant_id = $1 AND dimension = 'api_requests'`, tn.ID).Scan(&used); err != nil {
		t.Fatal(err)
	}
	if err := d.OwnerPool.QueryRow(ctx, `SELECT coalesce(sum(amount), 0) FROM tenantry.quota_consumptions WHERE tenant_id = $1 AND allowed`, tn.ID).Scan(&allowedSum); err != nil {
		t.Fatal(err)
	}
	t.Logf("answered %d calls (%d retried after the kill); granted %d of %d", answered.Load(), retried.Load(), granted.Load(), hard)
	switch {
	case granted.Load() > hard:
		t.Fatalf("over-granted: %d > hard limit %d", granted.Load(), hard)
	case used != granted.Load() || allowedSum != granted.Load():
		t.Fatalf("database counter %d and recorded consumptions %d, but clients were granted %d", used, allowedSum, granted.Load())
	case granted.Load() < hard-4:
		t.Fatalf("stopped at %d, well below the limit %d: denials while allowance was left", granted.Load(), hard)
	case retried.Load() == 0:
		t.Fatalf("the kill interrupted no call; the test proved nothing about a crash")
	}
}
