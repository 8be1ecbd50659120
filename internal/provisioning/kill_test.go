package provisioning_test

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/provisioning"
)

// The worker process of TestResumeAfterKill is this test binary started again with these
// variables: it works the queue on the given database and stops dead inside the given step.
const (
	childEnv       = "TENANTRY_PROVISIONING_CHILD"
	childDBEnv     = "TENANTRY_PROVISIONING_CHILD_DB"
	childQueueEnv  = "TENANTRY_PROVISIONING_CHILD_QUEUE"
	childStepEnv   = "TENANTRY_PROVISIONING_CHILD_STEP"
	childMasterEnv = "TENANTRY_PROVISIONING_CHILD_MASTER"
	childReached   = "REACHED"
)

// crashChild works provisioning runs until it is killed; when a run reaches the step to die in
// (after the step's effect, before its completion is recorded) it says so on stdout and hangs.
func crashChild() int {
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := db.Open(ctx, os.Getenv(childDBEnv), "", log)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	mk, _ := hex.DecodeString(os.Getenv(childMasterEnv))
	master, err := keys.NewLocalMaster(mk)
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	dieAt := os.Getenv(childStepEnv)
	svc := provisioning.NewService(d, log, provisioning.WithKeys(keys.NewService(d.App, master)), provisioning.WithQueue(os.Getenv(childQueueEnv)),
		provisioning.WithFaults(func(_ context.Context, step string, _ int) error {
			if step == dieAt {
				fmt.Println(childReached)
				select {} // killed here
			}
			return nil
		}))
	c, err := provisioning.NewClient(d.AppPool, svc, 2, log)
	if err == nil {
		err = c.Start(ctx)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		return 1
	}
	select {}
}

// TestResumeAfterKill runs the worker in another process and kills it with SIGKILL in the middle
// of a step (after its effect); a new worker and Resume complete the run with one schema, one
// invitation and one invitation e-mail.
func TestResumeAfterKill(t *testing.T) {
	// Not parallel: Resume queues every unfinished run of the package database, and other
	// tests' runs must not be taken over by this test's workers and their faults.
	for _, dieAt := range []string{provisioning.StepSchema, provisioning.StepAdmin} {
		t.Run(strings.ReplaceAll(dieAt, " ", "_"), func(t *testing.T) {
			b := setup(t)
			r := b.start(uniqueSlug("kill"))
			cmd := exec.Command(os.Args[0], "-test.run=^$")
			cmd.Env = append(os.Environ(), childEnv+"=1", childDBEnv+"="+os.Getenv("TENANTRY_TEST_DATABASE_URL"),
				childQueueEnv+"="+b.queue, childStepEnv+"="+dieAt, childMasterEnv+"="+hex.EncodeToString(b.master))
			out, err := cmd.StdoutPipe()
			if err != nil {
				t.Fatal(err)
			}
			cmd.Stderr = os.Stderr
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			reached := make(chan bool, 1)
			go func() {
				sc := bufio.NewScanner(out)
				for sc.Scan() {
					if sc.Text() == childReached {
						reached <- true
						return
					}
				}
				reached <- false
			}()
			select {
			case ok := <-reached:
				if !ok {
					t.Fatal("the worker process ended before reaching the step")
				}
			case <-time.After(60 * time.Second):
				_ = cmd.Process.Kill()
				t.Fatal("the worker process never reached the step")
			}
			if err := cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup of any kind
				t.Fatal(err)
			}
			_ = cmd.Wait()

			mid, err := b.svc.Run(context.Background(), r.ID)
			if err != nil {
				t.Fatal(err)
			}
			if mid.State != provisioning.StateRunning {
				t.Fatalf("after the kill the run is %s", mid.State)
			}
			b.workers()
			if _, err := b.svc.Resume(context.Background()); err != nil {
				t.Fatal(err)
			}
			r = b.wait(r.ID, provisioning.StateDone, provisioning.StateFailed)
			if r.State != provisioning.StateDone {
				t.Fatalf("resumed run %s: %s", r.State, r.Error)
			}
			for _, st := range r.Steps {
				if st.Name == dieAt && st.Attempts < 2 {
					t.Errorf("killed step %s: %d attempts, want a second one", st.Name, st.Attempts)
				}
			}
			got := b.traces(r, *r.TenantID)
			want := traces{Schemas: 1, Roles: 1, Keysets: 1, Quotas: 6, Tenants: 1, Invitations: 1, InvitationMails: 1, Projects: 3}
			if got != want {
				t.Errorf("traces = %+v, want %+v", got, want)
			}
		})
	}
}
