package quota

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/riverqueue/river"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/validation"
)

// Webhook headers. The signature is HMAC-SHA256, keyed with the tenant's webhook signing secret
// (the integrations.webhook_secret setting), over "<timestamp>.<body>", hex-encoded after "v1=".
// Receivers recompute it and refuse timestamps older than a few minutes (replays).
const (
	HeaderTimestamp = "Tenantry-Timestamp"
	HeaderSignature = "Tenantry-Signature"
	HeaderEvent     = "Tenantry-Delivery"
)

// WebhookAttempts is how many times a delivery is tried before it is given up.
const WebhookAttempts = 8

// Sign returns the signature header value for body sent at ts.
func Sign(secret []byte, ts time.Time, body []byte) string {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(strconv.FormatInt(ts.Unix(), 10)))
	m.Write([]byte("."))
	m.Write(body)
	return "v1=" + hex.EncodeToString(m.Sum(nil))
}

// VerifySignature checks a received webhook: the signature matches and the timestamp is within
// tolerance of now.
func VerifySignature(secret []byte, timestamp, signature string, body []byte, now time.Time, tolerance time.Duration) bool {
	sec, err := strconv.ParseInt(timestamp, 10, 64)
	if err != nil {
		return false
	}
	ts := time.Unix(sec, 0)
	if now.Sub(ts) > tolerance || ts.Sub(now) > tolerance {
		return false
	}
	return hmac.Equal([]byte(Sign(secret, ts, body)), []byte(signature))
}

// WebhookArgs asks for one webhook delivery.
type WebhookArgs struct {
	DeliveryID int64 `json:"delivery_id"`
}

// Kind names the job in River.
func (WebhookArgs) Kind() string { return "quota.webhook" }

// WebhookWorker posts alert webhooks; River retries a failed attempt with NextRetry's backoff.
type WebhookWorker struct {
	river.WorkerDefaults[WebhookArgs]
	Service *Service
}

// NextRetry backs off exponentially: 10 s, 20 s, 40 s, ... at most an hour.
func (w *WebhookWorker) NextRetry(job *river.Job[WebhookArgs]) time.Time {
	return time.Now().Add(WebhookBackoff(job.Attempt))
}

// WebhookBackoff is the wait after the attempt-th failed attempt.
func WebhookBackoff(attempt int) time.Duration {
	d := 10 * time.Second
	for i := 1; i < attempt && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

// Timeout bounds one attempt.
func (w *WebhookWorker) Timeout(*river.Job[WebhookArgs]) time.Duration { return 30 * time.Second }

// Work makes one attempt.
func (w *WebhookWorker) Work(ctx context.Context, job *river.Job[WebhookArgs]) error {
	return w.Service.DeliverWebhook(ctx, job.Args.DeliveryID)
}

// Delivery is one webhook delivery in the log.
type Delivery struct {
	ID          int64
	TenantID    int64
	AlertID     int64
	URL         string
	Body        string
	Attempts    int
	LastStatus  *int
	LastError   string
	DeliveredAt *time.Time
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// DeliverWebhook makes one attempt at a delivery and records it in the log. It returns an error
// (so River retries) unless the receiver answered 2xx; a delivery done already is not sent again.
func (s *Service) DeliverWebhook(ctx context.Context, id int64) error {
	var d Delivery
	if err := s.db.App.WithContext(ctx).Raw("SELECT * FROM tenantry.quota_webhook_deliveries WHERE id = ?", id).Scan(&d).Error; err != nil {
		return err
	}
	if d.ID == 0 {
		return river.JobCancel(fmt.Errorf("quota: no webhook delivery %d", id))
	}
	if d.DeliveredAt != nil {
		return nil
	}
	n := s.notify
	var secret []byte
	var err error
	if n != nil && n.Secret != nil {
		secret, err = n.Secret(ctx, d.TenantID)
	}
	if err == nil && len(secret) == 0 {
		err = fmt.Errorf("the tenant has no webhook signing secret (setting integrations.webhook_secret)")
	}
	var status *int
	if err == nil {
		now := time.Now()
		req, rerr := http.NewRequestWithContext(ctx, http.MethodPost, d.URL, bytes.NewReader([]byte(d.Body)))
		if rerr != nil {
			err = rerr
		} else {
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("User-Agent", "Tenantry-Webhooks/1")
			req.Header.Set(HeaderTimestamp, strconv.FormatInt(now.Unix(), 10))
			req.Header.Set(HeaderSignature, Sign(secret, now, []byte(d.Body)))
			req.Header.Set(HeaderEvent, strconv.FormatInt(d.ID, 10))
			resp, herr := n.HTTP.Do(req)
			if herr != nil {
				err = herr
			} else {
				_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
				resp.Body.Close()
				code := resp.StatusCode
				status = &code
				if code < 200 || code > 299 {
					err = fmt.Errorf("the receiver answered %d", code)
				}
			}
		}
	}
	msg := ""
	if err != nil {
		msg = err.Error()
	}
	if uerr := s.db.App.WithContext(ctx).Exec(`UPDATE tenantry.quota_webhook_deliveries SET attempts = attempts + 1, last_status = ?,
		last_error = ?, delivered_at = CASE WHEN ? THEN now() END, updated_at = now() WHERE id = ?`, status, msg, err == nil, id).Error; uerr != nil {
		return uerr
	}
	if err != nil {
		return fmt.Errorf("quota: webhook delivery %d: %w", id, err)
	}
	return nil
}

// Deliveries returns the tenant's webhook delivery log, newest first.
func (s *Service) Deliveries(ctx context.Context, tenantID int64, limit int) ([]Delivery, error) {
	var out []Delivery
	err := s.db.App.WithContext(ctx).Raw("SELECT * FROM tenantry.quota_webhook_deliveries WHERE tenant_id = ? ORDER BY id DESC LIMIT ?", tenantID, limit).Scan(&out).Error
	return out, err
}

// Webhook returns the tenant's alert webhook URL, "" when none.
func (s *Service) Webhook(ctx context.Context, tenantID int64) (string, error) {
	var u string
	err := s.db.App.WithContext(ctx).Raw("SELECT url FROM tenantry.quota_webhooks WHERE tenant_id = ?", tenantID).Scan(&u).Error
	return u, err
}

// SetWebhook sets (or with url "" removes) where the tenant's alerts are posted, audited.
// Validation errors are keyed "url".
func (s *Service) SetWebhook(ctx context.Context, actor string, tenantID int64, rawURL string) error {
	rawURL = strings.TrimSpace(rawURL)
	if rawURL != "" {
		u, err := url.Parse(rawURL)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || len(rawURL) > 2000 {
			return validation.Errors{"url": "Enter an http or https address, such as https://example.com/hooks/quota."}.Err()
		}
	}
	return s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var slug string
		if err := tx.Raw("SELECT slug FROM tenantry.tenants WHERE id = ?", tenantID).Scan(&slug).Error; err != nil {
			return err
		}
		if slug == "" {
			return ErrTenantNotFound
		}
		var err error
		if rawURL == "" {
			err = tx.Exec("DELETE FROM tenantry.quota_webhooks WHERE tenant_id = ?", tenantID).Error
		} else {
			err = tx.Exec(`INSERT INTO tenantry.quota_webhooks (tenant_id, url, updated_by) VALUES (?, ?, ?)
				ON CONFLICT (tenant_id) DO UPDATE SET url = EXCLUDED.url, updated_by = EXCLUDED.updated_by, updated_at = now()`,
				tenantID, rawURL, actor).Error
		}
		if err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "quota.webhook_changed", Target: slug,
			Detail: audit.Detail(map[string]any{"url": rawURL})})
	})
}
