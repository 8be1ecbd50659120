package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tenantry/tenantry/internal/config"
	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/lifecycle"
	"github.com/tenantry/tenantry/internal/tenant"
)

// TestVerifyCommands: verify-export accepts a real archive and refuses a truncated one;
// verify-certificate accepts a real certificate with the platform's key, refuses it with another
// key and with one changed byte.
func TestVerifyCommands(t *testing.T) {
	d := dbtest.Open(t)
	ctx := context.Background()
	mk := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(mk)
	master, err := keys.NewLocalMaster(mk)
	if err != nil {
		t.Fatal(err)
	}
	ks := keys.NewService(d.App, master)
	ts := tenant.NewService(d, dbtest.Logger(t), tenant.WithKeys(ks))
	lc := lifecycle.New(lifecycle.Config{DB: d, Tenants: ts, Keys: ks, Master: master, ExportDir: t.TempDir()})
	now := time.Date(2032, 1, 1, 0, 0, 0, 0, time.UTC)
	lc.SetClock(func() time.Time { return now })
	r := make([]byte, 3)
	_, _ = rand.Read(r)
	tn, err := ts.Create(ctx, "test", tenant.NewTenant{Slug: "cli-" + hex.EncodeToString(r), Name: "CLI", PlanKey: "free"})
	if err != nil {
		t.Fatal(err)
	}
	e, err := lc.RequestExport(ctx, "test", tn.ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := lc.RunExport(ctx, e.ID); err != nil {
		t.Fatal(err)
	}
	e, _ = lc.ExportByID(ctx, tn.ID, e.ID)
	if err := verifyExport([]string{lc.ArchivePath(e)}); err != nil {
		t.Fatalf("verify-export of a good archive: %v", err)
	}
	good, _ := os.ReadFile(lc.ArchivePath(e))
	bad := filepath.Join(t.TempDir(), "bad.zip")
	os.WriteFile(bad, good[:len(good)/2], 0o600)
	if err := verifyExport([]string{bad}); err == nil {
		t.Fatal("verify-export accepted a truncated archive")
	}

	if _, err := lc.Start(ctx, "test", tn.ID, lifecycle.StartInput{Reason: "CLI test", NoticeDays: 1}); err != nil {
		t.Fatal(err)
	}
	now = now.Add(25 * time.Hour)
	if err := lc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	now = now.Add(60 * 24 * time.Hour)
	if err := lc.Tick(ctx); err != nil {
		t.Fatal(err)
	}
	doc, ok, err := lc.CertificateOf(ctx, tn.ID)
	if err != nil || !ok {
		t.Fatalf("no certificate: %v", err)
	}
	pub, _, _ := lc.PublicKey(ctx)
	b64, _ := lifecycle.FormatKey(pub)
	file := filepath.Join(t.TempDir(), "cert.json")
	os.WriteFile(file, doc, 0o600)
	cfg := config.Config{DatabaseURL: dbtest.URL(t)}
	log := dbtest.Logger(t)
	if err := verifyCertificate(ctx, cfg, log, []string{"--public-key", b64, file}); err != nil {
		t.Fatalf("good certificate: %v", err)
	}
	if err := verifyCertificate(ctx, cfg, log, []string{file}); err != nil {
		t.Fatalf("good certificate, key from the database: %v", err)
	}
	other := strings.Repeat("A", 43) + "="
	if err := verifyCertificate(ctx, cfg, log, []string{"--public-key", other, file}); err == nil {
		t.Fatal("accepted with another platform's key")
	}
	edited := []byte(strings.Replace(string(doc), "CLI test", "CLI tesT", 1))
	os.WriteFile(file, edited, 0o600)
	if err := verifyCertificate(ctx, cfg, log, []string{"--public-key", b64, file}); err == nil {
		t.Fatal("accepted an edited certificate")
	}
}
