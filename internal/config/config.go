// Package config reads Tenantry's configuration from the environment, once, at start-up.
// Everything else receives the values it needs as parameters.
package config

import (
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/tenantry/tenantry/internal/mail"
)

// DefaultDatabaseURL is the local PostgreSQL that `make run` and the tests use.
const DefaultDatabaseURL = "postgres://postgres@127.0.0.1:5432/tenantry?sslmode=disable"

// Config is the process configuration. See the configuration table in README.md.
type Config struct {
	// DatabaseURL connects as a role that can act as tenantry_owner (migrations, provisioning DDL).
	DatabaseURL string
	// AppDatabaseURL connects as a role that can act as tenantry_app (serving requests).
	// Empty means DatabaseURL, switching role after connecting.
	AppDatabaseURL string
	// Addr is where `serve` listens.
	Addr string
	// AdminEmail and AdminPassword create the first platform admin at start when none exists.
	AdminEmail    string
	AdminPassword string
	// SessionKey signs session cookies; empty means generated once and kept in the database.
	SessionKey string
	// MasterKey (base64, 32 bytes) or MasterKeyFile wraps every tenant's encryption keyset.
	MasterKey     string
	MasterKeyFile string
	// IsolationInterval is how often the isolation verifier runs.
	IsolationInterval time.Duration
	// SMTP is where the outbox is delivered (TENANTRY_SMTP_URL, TENANTRY_MAIL_FROM); nil means
	// no delivery: messages stay in the outbox, readable on the admin Outbox page.
	SMTP      *mail.SMTPConfig
	LogLevel  slog.Level
	LogFormat string // "text" or "json"
}

// FromEnv reads the configuration from environment variables.
func FromEnv() (Config, error) {
	c := Config{
		DatabaseURL:    env("DATABASE_URL", DefaultDatabaseURL),
		AppDatabaseURL: os.Getenv("TENANTRY_APP_DATABASE_URL"),
		Addr:           env("TENANTRY_ADDR", "127.0.0.1:8080"),
		AdminEmail:     strings.TrimSpace(os.Getenv("TENANTRY_ADMIN_EMAIL")),
		AdminPassword:  os.Getenv("TENANTRY_ADMIN_PASSWORD"),
		SessionKey:     os.Getenv("TENANTRY_SESSION_KEY"),
		MasterKey:      os.Getenv("TENANTRY_MASTER_KEY"),
		MasterKeyFile:  strings.TrimSpace(os.Getenv("TENANTRY_MASTER_KEY_FILE")),
		LogFormat:      env("TENANTRY_LOG_FORMAT", "text"),
	}
	if err := c.LogLevel.UnmarshalText([]byte(env("TENANTRY_LOG_LEVEL", "info"))); err != nil {
		return c, fmt.Errorf("TENANTRY_LOG_LEVEL: %w", err)
	}
	if c.LogFormat != "text" && c.LogFormat != "json" {
		return c, fmt.Errorf("TENANTRY_LOG_FORMAT must be text or json, not %q", c.LogFormat)
	}
	interval, err := time.ParseDuration(env("TENANTRY_ISOLATION_INTERVAL", "1h"))
	if err != nil || interval < time.Minute {
		return c, fmt.Errorf("TENANTRY_ISOLATION_INTERVAL must be a duration of at least 1m, such as 1h or 30m")
	}
	c.IsolationInterval = interval
	if raw := strings.TrimSpace(os.Getenv("TENANTRY_SMTP_URL")); raw != "" {
		smtp, err := mail.ParseSMTPURL(raw, os.Getenv("TENANTRY_MAIL_FROM"))
		if err != nil {
			return c, err
		}
		c.SMTP = &smtp
	}
	if (c.AdminEmail == "") != (c.AdminPassword == "") {
		return c, fmt.Errorf("set both TENANTRY_ADMIN_EMAIL and TENANTRY_ADMIN_PASSWORD, or neither")
	}
	return c, nil
}

// Logger builds the process logger from the configured level and format.
func (c Config) Logger() *slog.Logger {
	opts := &slog.HandlerOptions{Level: c.LogLevel}
	if c.LogFormat == "json" {
		return slog.New(slog.NewJSONHandler(os.Stderr, opts))
	}
	return slog.New(slog.NewTextHandler(os.Stderr, opts))
}

func env(key, def string) string {
	if v := strings.TrimSpace(os.Getenv(key)); v != "" {
		return v
	}
	return def
}
