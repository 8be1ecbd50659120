package main

import (
	"context"
	"crypto/ed25519"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/tenantry/tenantry/internal/config"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/lifecycle"
)

// lifecycleExportDir is where export archives are kept: TENANTRY_EXPORT_DIR, or .data/exports.
func lifecycleExportDir() string {
	if d := strings.TrimSpace(os.Getenv("TENANTRY_EXPORT_DIR")); d != "" {
		return d
	}
	return lifecycle.DefaultExportDir
}

// verifyCertificate checks a certificate of data destruction: its exact bytes and ed25519
// signature, and that the key is the platform's (given with --public-key, or read from the
// database when it is reachable). It prints the certificate's content.
func verifyCertificate(ctx context.Context, cfg config.Config, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("verify-certificate", flag.ContinueOnError)
	pubFlag := fs.String("public-key", "", "the platform's public key (base64), as /verify shows it; default: read it from the database")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: tenantry verify-certificate [--public-key BASE64] FILE")
	}
	doc, err := os.ReadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	var trusted []ed25519.PublicKey
	source := ""
	switch {
	case *pubFlag != "":
		k, err := base64.StdEncoding.DecodeString(strings.TrimSpace(*pubFlag))
		if err != nil || len(k) != ed25519.PublicKeySize {
			return errors.New("--public-key is not a base64 ed25519 public key")
		}
		trusted, source = append(trusted, k), "--public-key"
	default:
		d, err := db.Open(ctx, cfg.DatabaseURL, cfg.AppDatabaseURL, log)
		if err == nil {
			k, ok, kerr := lifecycle.PublicKeyFrom(d.App.WithContext(ctx))
			d.Close()
			if kerr == nil && ok {
				trusted, source = append(trusted, k), "the platform database"
			}
		}
	}
	sc, err := lifecycle.VerifyCertificate(doc, trusted...)
	if err != nil {
		fmt.Println("INVALID:", err)
		return errors.New("certificate verification failed")
	}
	c := sc.Certificate
	fmt.Printf("VALID certificate %s, signed by key %s", c.ID, sc.Signature.KeyID)
	if source != "" {
		fmt.Printf(" (the platform's key, from %s)\n", source)
	} else {
		fmt.Printf(" (NOT checked against the platform's key: give --public-key or a reachable database)\n")
	}
	fmt.Printf("tenant:   %s (%s, id %d)\npurged:   %s by %s\nreason:   %s\nschema:   %s, role %s\nkeys:     %v destroyed\n",
		c.Tenant.Name, c.Tenant.Slug, c.Tenant.ID, c.Timeline.PurgedAt.Format("2006-01-02 15:04:05 MST"), c.Operator, c.Reason,
		c.Destroyed.Schema, c.Destroyed.Role, c.Destroyed.KeyIDs)
	for _, t := range c.Destroyed.Tables {
		fmt.Printf("table:    %s, %d rows\n", t.Name, t.Rows)
	}
	for _, e := range c.Destroyed.ExportArchives {
		fmt.Printf("archive:  %s deleted (sha256 %s)\n", e.File, e.SHA256)
	}
	if source == "" {
		return errors.New("signature valid, but the signing key could not be checked against the platform's")
	}
	return nil
}

// verifyExport checks an export archive against its manifest.
func verifyExport(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: tenantry verify-export FILE")
	}
	m, err := lifecycle.VerifyArchive(args[0])
	if err != nil {
		fmt.Println("INVALID:", err)
		return errors.New("export verification failed")
	}
	var rows int64
	for _, t := range m.Tables {
		rows += t.Rows
	}
	fmt.Printf("VALID export of %s (%s, id %d) made %s: %d files, %d tables, %d rows; every SHA-256 and row count matches the manifest\n",
		m.Tenant.Name, m.Tenant.Slug, m.Tenant.ID, m.CreatedAt.Format("2006-01-02 15:04:05 MST"), len(m.Files), len(m.Tables), rows)
	return nil
}
