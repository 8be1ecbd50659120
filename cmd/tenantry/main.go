// Command tenantry is the Tenantry control plane: one binary with subcommands to migrate the
// database, seed demo data and serve the portal, the API and the background jobs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/riverqueue/river"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/billing"
	"github.com/tenantry/tenantry/internal/config"
	"github.com/tenantry/tenantry/internal/credentials"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/demo"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/isolation"
	"github.com/tenantry/tenantry/internal/jobs"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/lifecycle"
	"github.com/tenantry/tenantry/internal/mail"
	"github.com/tenantry/tenantry/internal/provisioning"
	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/signup"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/tenantauth"
	"github.com/tenantry/tenantry/web"
)

const usage = `Usage: tenantry <command> [flags]

Commands:
  migrate            create the database if absent and apply every migration (idempotent)
  seed --demo        add demo tenants and users (idempotent); --if-empty: only into an empty registry
  serve              serve the portal, the API and the background jobs
  verify-isolation   probe sampled tenant pairs across every access path; exits non-zero on a breach
  verify-audit       re-check the platform audit chain and every tenant's own chain; non-zero when one is broken
  gen-master-key F   write a new random master key to file F (mode 0600; never overwrites)
  verify-certificate F  check a certificate of data destruction (signature, exact bytes, platform key)
  verify-export F    check an export archive against its manifest (files, SHA-256, row counts)

Configuration is read from the environment; see README.md.
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "tenantry:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("no command given")
	}
	cfg, err := config.FromEnv()
	if err != nil {
		return err
	}
	log := cfg.Logger()
	switch args[0] {
	case "migrate":
		return migrate(ctx, cfg, log)
	case "seed":
		return seed(ctx, cfg, log, args[1:])
	case "serve":
		return serve(ctx, cfg, log)
	case "verify-isolation":
		return verifyIsolation(ctx, cfg, log)
	case "verify-audit":
		return verifyAudit(ctx, cfg, log)
	case "verify-certificate": // certificates of data destruction (lifecycle.go)
		return verifyCertificate(ctx, cfg, log, args[1:])
	case "verify-export":
		return verifyExport(args[1:])
	case "gen-master-key":
		if len(args) != 2 {
			return errors.New("usage: tenantry gen-master-key FILE")
		}
		if err := keys.GenerateMasterKeyFile(args[1]); err != nil {
			return err
		}
		log.Info("wrote a new master key; keep it safe: without it no tenant secret can be read", "file", args[1])
		return nil
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	default:
		fmt.Fprint(os.Stderr, usage)
		return fmt.Errorf("unknown command %q", args[0])
	}
}

func migrate(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	created, err := db.EnsureDatabase(ctx, cfg.DatabaseURL)
	if err != nil {
		return err
	}
	if created {
		log.Info("created database")
	}
	if err := db.Migrate(ctx, cfg.DatabaseURL, log); err != nil {
		return err
	}
	d, err := db.Open(ctx, cfg.DatabaseURL, cfg.AppDatabaseURL, log)
	if err != nil {
		return err
	}
	defer d.Close()
	n, err := d.MigrateTenants(ctx, log)
	if err != nil {
		return fmt.Errorf("tenant schemas (%d migrated before the failure; run migrate again to resume): %w", n, err)
	}
	log.Info("database is up to date", "tenant_schemas", n)
	return nil
}

func seed(ctx context.Context, cfg config.Config, log *slog.Logger, args []string) error {
	fs := flag.NewFlagSet("seed", flag.ContinueOnError)
	demoData := fs.Bool("demo", false, "add the demo tenants and users")
	ifEmpty := fs.Bool("if-empty", false, "do nothing when the registry already has tenants")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if !*demoData {
		return errors.New("seed: say what to seed: --demo")
	}
	d, err := db.Open(ctx, cfg.DatabaseURL, cfg.AppDatabaseURL, log)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := db.CheckMigrated(ctx, d.AppPool); err != nil {
		return err
	}
	master, err := keys.LoadMaster(cfg.MasterKey, cfg.MasterKeyFile)
	if err != nil {
		return err
	}
	res, err := demo.Seed(ctx, d, *ifEmpty, log)
	if err != nil {
		return err
	}
	if err := ensureKeysets(ctx, d, keys.NewService(d.App, master)); err != nil {
		return err
	}
	if res.Skipped {
		log.Info("registry already has tenants; demo data not added")
	} else {
		log.Info("demo data seeded", "tenants_created", res.TenantsCreated)
	}
	return nil
}

func verifyIsolation(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	d, err := db.Open(ctx, cfg.DatabaseURL, cfg.AppDatabaseURL, log)
	if err != nil {
		return err
	}
	defer d.Close()
	// The server's verifier also carries the HTTP probes, which go through the whole handler stack.
	srv, err := web.New(ctx, web.Config{DB: d, Log: log, SessionKey: []byte(cfg.SessionKey)})
	if err != nil {
		return err
	}
	run, err := srv.Verifier().Run(ctx, "cli")
	fmt.Printf("isolation run %d: %s\n", run.ID, run.Summary())
	return err
}

func verifyAudit(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	d, err := db.Open(ctx, cfg.DatabaseURL, cfg.AppDatabaseURL, log)
	if err != nil {
		return err
	}
	defer d.Close()
	var broken []string
	n, err := audit.Verify(ctx, d.App)
	if err != nil {
		broken = append(broken, fmt.Sprintf("platform: %v (after %d intact events)", err, n))
	} else {
		fmt.Printf("platform audit chain: %d events, intact\n", n)
	}
	var tenants []struct {
		ID   int64
		Slug string
	}
	if err := d.App.WithContext(ctx).Raw(`SELECT t.id, t.slug FROM tenantry.tenants t
		WHERE EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = 't_' || t.id) ORDER BY t.id`).Scan(&tenants).Error; err != nil {
		return err
	}
	events := 0
	for _, t := range tenants {
		n, err := audit.VerifyTenant(ctx, d, t.ID)
		if err != nil {
			broken = append(broken, fmt.Sprintf("tenant %s: %v (after %d intact events)", t.Slug, err, n))
			continue
		}
		events += n
	}
	fmt.Printf("tenant audit chains: %d tenants, %d events, %d broken\n", len(tenants), events, len(broken))
	if len(broken) > 0 {
		for _, b := range broken {
			fmt.Println("BROKEN", b)
		}
		return fmt.Errorf("%d audit chain(s) broken", len(broken))
	}
	return nil
}

// ensureKeysets gives every tenant that still has data a keyset (idempotent).
func ensureKeysets(ctx context.Context, d *db.DB, k *keys.Service) error {
	var ids []int64
	if err := d.App.WithContext(ctx).Table("tenantry.tenants").Where("state <> 'purged'").Order("id").Pluck("id", &ids).Error; err != nil {
		return err
	}
	for _, id := range ids {
		if err := k.Create(ctx, nil, id); err != nil {
			return fmt.Errorf("keyset of tenant %d: %w", id, err)
		}
	}
	return nil
}

func serve(ctx context.Context, cfg config.Config, log *slog.Logger) error {
	master, err := keys.LoadMaster(cfg.MasterKey, cfg.MasterKeyFile)
	if err != nil {
		return err
	}
	d, err := db.Open(ctx, cfg.DatabaseURL, cfg.AppDatabaseURL, log)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := db.CheckMigrated(ctx, d.AppPool); err != nil {
		return err
	}
	users := identity.NewService(d.App)
	if cfg.AdminEmail != "" {
		created, err := users.EnsureAdmin(ctx, cfg.AdminEmail, cfg.AdminPassword)
		if err != nil {
			return fmt.Errorf("create admin from TENANTRY_ADMIN_EMAIL: %w", err)
		}
		if created {
			log.Info("created platform admin from the environment", "email", cfg.AdminEmail)
		}
	}

	keySvc := keys.NewService(d.App, master)
	// Every owner of data encrypted with tenant keys, so rotations re-encrypt it.
	keySvc.RegisterReencrypter("credentials", credentials.NewService(d, keySvc))
	keySvc.RegisterReencrypter("mfa", tenantauth.NewMFA(tenantauth.NewService(d), keySvc))
	keySvc.RegisterReencrypter("settings", settings.NewService(d.App, tenant.NewService(d, log)).WithKeys(keySvc)) // secret settings
	workers := river.NewWorkers()
	river.AddWorker(workers, &identity.PruneAttemptsWorker{Service: users})
	river.AddWorker(workers, &tenantauth.ActAsSweepWorker{Service: tenantauth.NewService(d)})
	river.AddWorker(workers, &tenant.FinishProvisioningWorker{Service: tenant.NewService(d, log, tenant.WithKeys(keySvc))})
	river.AddWorker(workers, keys.NewRotateWorker(keySvc))
	billingSvc := billing.NewService(d) // monthly invoices and the overdue sweep
	river.AddWorker(workers, &billing.InvoiceWorker{Service: billingSvc})
	river.AddWorker(workers, &billing.OverdueWorker{Service: billingSvc})
	river.AddWorker(workers, &quota.RollupWorker{Service: quota.NewService(d)})
	// Quota alerts (evaluated every 5 s), their webhooks, grant expiries and scaling rules.
	quotaJobs := quota.NewService(d)
	if err := quotaJobs.SetNotifier(&quota.Notifier{Prefs: quota.SettingsPrefs(d, settings.NewService(d.App, tenant.NewService(d, log))),
		Secret: quota.SettingsSecret(d, settings.NewService(d.App, tenant.NewService(d, log)).WithKeys(keySvc))}); err != nil {
		return err
	}
	river.AddWorker(workers, &quota.AlertsWorker{Service: quotaJobs})
	river.AddWorker(workers, &quota.WebhookWorker{Service: quotaJobs})
	river.AddWorker(workers, &quota.ScalingWorker{Service: quotaJobs})
	river.AddWorker(workers, &quota.LeaseReconcileWorker{Service: quota.NewService(d)})
	mailer, mailDelivery := mail.NewDeliverer(d.App, nil, log), ""
	if cfg.SMTP != nil {
		mailer, mailDelivery = mail.NewDeliverer(d.App, mail.NewSMTPTransport(*cfg.SMTP), log), cfg.SMTP.String()
		log.Info("delivering e-mail from the outbox", "smtp", mailDelivery)
	} else {
		log.Info("TENANTRY_SMTP_URL is not set: e-mail stays in the outbox (admin Outbox page)")
	}
	river.AddWorker(workers, &mail.DeliverWorker{Deliverer: mailer})
	srv, err := web.New(ctx, web.Config{DB: d, Log: log, SessionKey: []byte(cfg.SessionKey), Keys: keySvc, IsolationInterval: cfg.IsolationInterval, MailDelivery: mailDelivery,
		Master: master, ExportDir: lifecycleExportDir()})
	if err != nil {
		return err
	}
	river.AddWorker(workers, &isolation.VerifyWorker{Verifier: srv.Verifier()})
	lc := srv.Lifecycle() // decommissioning: the minute tick and export jobs (internal/lifecycle)
	if err := lc.EnableJobs(); err != nil {
		return err
	}
	river.AddWorker(workers, &lifecycle.TickWorker{Service: lc})
	river.AddWorker(workers, &lifecycle.ExportWorker{Service: lc})
	river.AddWorker(workers, &signup.FinishWorker{Service: signup.NewService(d, log, signup.Provisioning{Service: provisioning.NewService(d, log, provisioning.WithKeys(keySvc))}, os.Getenv("TENANTRY_BASE_URL"))})
	leaseCfg, err := quota.LeaseConfigFromEnv()
	if err != nil {
		return err
	}
	leaseCfg.Log = log
	srv.UseQuotaLeases(leaseCfg) // hot tenant-dimensions are served from per-node quota leases
	jobClient, err := jobs.New(d.AppPool, workers, []*river.PeriodicJob{lifecycle.TickPeriodic(),
		billing.InvoicePeriodic(), billing.OverduePeriodic(),
		identity.PruneAttemptsPeriodic(), tenantauth.ActAsSweepPeriodic(), tenant.FinishProvisioningPeriodic(), isolation.Periodic(cfg.IsolationInterval),
		quota.LeaseReconcilePeriodic(),
		quota.RollupPeriodic(), quota.AlertsPeriodic(), quota.ScalingPeriodic(), mail.DeliverPeriodic(), signup.FinishPeriodic()}, log)
	if err != nil {
		return err
	}
	if err := jobClient.Start(ctx); err != nil {
		return fmt.Errorf("start jobs: %w", err)
	}
	// Provisioning runs work on their own queue, 4 at a time; runs a previous stop cut short resume.
	provJobs, err := provisioning.NewClient(d.AppPool, srv.Provisioning(), 4, log)
	if err != nil {
		return err
	}
	if err := provJobs.Start(ctx); err != nil {
		return fmt.Errorf("start provisioning jobs: %w", err)
	}
	if n, err := srv.Provisioning().Resume(ctx); err != nil {
		return fmt.Errorf("resume provisioning runs: %w", err)
	} else if n > 0 {
		log.Info("resumed provisioning runs", "runs", n)
	}

	httpServer := &http.Server{Addr: cfg.Addr, Handler: srv, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- httpServer.ListenAndServe() }()
	log.Info("Tenantry is serving", "url", "http://"+cfg.Addr)

	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = httpServer.Shutdown(shutdownCtx)
	if lerr := srv.ReturnQuotaLeases(shutdownCtx); lerr != nil { // after the last request
		err = errors.Join(err, lerr)
	}
	if jerr := jobClient.Stop(shutdownCtx); jerr != nil {
		err = errors.Join(err, jerr)
	}
	if perr := provJobs.Stop(shutdownCtx); perr != nil {
		err = errors.Join(err, perr)
	}
	return err
}
