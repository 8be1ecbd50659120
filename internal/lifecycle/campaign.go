package lifecycle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"html"
	"strings"
	"text/template"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/mail"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// Message is one step of a tenant's notification campaign.
type Message struct {
	ID          int64
	TenantID    int64
	Run         int
	Key         string
	Subject     string
	Body        string
	ScheduledAt time.Time
	SentAt      *time.Time
	Recipients  int
	Skipped     bool
	UpdatedAt   time.Time
}

// TableName places campaign messages in the control plane.
func (Message) TableName() string { return "tenantry.lifecycle_messages" }

// MessageLabels names the campaign steps for people, in order.
var MessageLabels = map[string]string{
	"start": "At the start", "t-7": "7 days before suspension", "t-1": "1 day before suspension",
	"suspended": "At suspension", "export_ready": "When the export is ready",
}

// MessageKeys is the campaign's order.
var MessageKeys = []string{"start", "t-7", "t-1", "suspended", "export_ready"}

// defaults are the campaign's templates; text/template with the fields of messageData.
var defaults = map[string][2]string{
	"start": {"{{.Tenant}} will be closed on {{.SuspendDate}}",
		"Hello,\n\n{{.Tenant}} is being decommissioned: {{.Reason}}\n\nWhat happens when:\n- from {{.DegradeDate}} the portal and API become read-only;\n- on {{.SuspendDate}} sign-in and API keys stop working and your data is exported;\n- the export is kept for {{.ExportKeepDays}} days, and your data is destroyed after {{.RetentionDays}} days of retention.\n\nQuestions: {{.Contact}}\n"},
	"t-7": {"{{.Tenant}} closes in 7 days ({{.SuspendDate}})",
		"Hello,\n\n{{.Tenant}} will be suspended on {{.SuspendDate}} ({{.Reason}}). It is read-only from {{.DegradeDate}}. Take what you need before then.\n\nQuestions: {{.Contact}}\n"},
	"t-1": {"{{.Tenant}} closes tomorrow",
		"Hello,\n\n{{.Tenant}} will be suspended on {{.SuspendDate}}. After that nobody can sign in and API keys stop working.\n\nQuestions: {{.Contact}}\n"},
	"suspended": {"{{.Tenant}} is suspended",
		"Hello,\n\n{{.Tenant}} is now suspended ({{.Reason}}). Sign-in and API keys are refused. Your data is being exported.\n\nQuestions: {{.Contact}}\n"},
	"export_ready": {"The export of {{.Tenant}} is ready",
		"Hello,\n\nThe export of {{.Tenant}}'s data is ready and kept for {{.ExportKeepDays}} days. Ask {{.Contact}} for the archive; it comes with a manifest of SHA-256 checksums to verify it.\n\nAfter the retention period your data is destroyed and a certificate of destruction is issued.\n"},
}

type messageData struct {
	Tenant, Reason, Contact               string
	DegradeDate, SuspendDate              string
	ExportKeepDays, RetentionDays, Notice int
}

const dateLayout = "2 January 2006 15:04 MST"

func render(tmpl string, d messageData) (string, error) {
	t, err := template.New("m").Option("missingkey=error").Parse(tmpl)
	if err != nil {
		return "", err
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", err
	}
	return b.String(), nil
}

// planCampaign stores the campaign of run p for t, inside tx. Steps already in the past (T-7 of a
// 5-day notice) are left out.
func (s *Service) planCampaign(tx *gorm.DB, t tenant.Tenant, p Plan) error {
	at := map[string]time.Time{
		"start": p.StartedAt, "t-7": p.SuspendAt.Add(-7 * 24 * time.Hour), "t-1": p.SuspendAt.Add(-24 * time.Hour),
		"suspended": p.SuspendAt, "export_ready": p.SuspendAt,
	}
	for _, k := range MessageKeys {
		if (k == "t-7" || k == "t-1") && !at[k].After(p.StartedAt) {
			continue
		}
		m := Message{TenantID: t.ID, Run: p.Run, Key: k, Subject: defaults[k][0], Body: defaults[k][1], ScheduledAt: at[k], UpdatedAt: time.Now().UTC()}
		if err := tx.Create(&m).Error; err != nil {
			return err
		}
	}
	return nil
}

// Campaign returns the messages of the tenant's latest run, in schedule order.
func (s *Service) Campaign(ctx context.Context, tenantID int64) ([]Message, error) {
	var ms []Message
	err := s.d.App.WithContext(ctx).Where("tenant_id = ? AND run = (SELECT max(run) FROM tenantry.lifecycle_messages WHERE tenant_id = ?)", tenantID, tenantID).
		Order("scheduled_at, id").Find(&ms).Error
	return ms, err
}

// Delivery counts a message's outbox rows by state.
type Delivery struct {
	Pending, Sent, Failed int
}

// Deliveries reads the outbox state of every message of the tenant's campaign, by message id.
func (s *Service) Deliveries(ctx context.Context, tenantID int64, ms []Message) (map[int64]Delivery, error) {
	out := map[int64]Delivery{}
	for _, m := range ms {
		var rows []struct {
			State string
			N     int
		}
		err := s.d.App.WithContext(ctx).Table("tenantry.mail_outbox").Select("state, count(*) AS n").
			Where("dedup_key LIKE ?", dedupPrefix(m)+"%").Group("state").Scan(&rows).Error
		if err != nil {
			return nil, err
		}
		var d Delivery
		for _, r := range rows {
			switch r.State {
			case mail.StatePending:
				d.Pending = r.N
			case mail.StateSent:
				d.Sent = r.N
			case mail.StateFailed:
				d.Failed = r.N
			}
		}
		out[m.ID] = d
	}
	return out, nil
}

func dedupPrefix(m Message) string {
	return fmt.Sprintf("lifecycle:%d:%d:%s:", m.TenantID, m.Run, m.Key)
}

// MessageEdit changes a message that has not gone out yet.
type MessageEdit struct {
	Subject     string
	Body        string
	ScheduledAt time.Time
}

// EditMessage changes an unsent message's subject, body or date, refusing templates that do not
// render and messages already sent.
func (s *Service) EditMessage(ctx context.Context, actor string, tenantID, id int64, e MessageEdit) error {
	e.Subject, e.Body = strings.TrimSpace(e.Subject), strings.TrimSpace(e.Body)
	errs := validation.Errors{}
	probe := messageData{Tenant: "T", Reason: "R", Contact: "c@example.com", DegradeDate: "D", SuspendDate: "S"}
	if e.Subject == "" || len([]rune(e.Subject)) > 200 {
		errs.Add("subject", "Enter a subject of at most 200 characters.")
	} else if _, err := render(e.Subject, probe); err != nil {
		errs.Add("subject", "The subject's template does not work: "+templateError(err))
	}
	if e.Body == "" || len(e.Body) > 10000 {
		errs.Add("body", "Enter a body of at most 10,000 characters.")
	} else if _, err := render(e.Body, probe); err != nil {
		errs.Add("body", "The body's template does not work: "+templateError(err))
	}
	if e.ScheduledAt.IsZero() {
		errs.Add("scheduled_at", "Enter the date and time to send it.")
	}
	if err := errs.Err(); err != nil {
		return err
	}
	return s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		var m Message
		if err := tx.Where("tenant_id = ? AND id = ?", tenantID, id).Take(&m).Error; err != nil {
			return err
		}
		if m.SentAt != nil || m.Skipped {
			return validation.Errors{"subject": "This message has already gone out (or was dropped); it cannot be changed."}
		}
		if err := tx.Model(&m).Updates(map[string]any{"subject": e.Subject, "body": e.Body, "scheduled_at": e.ScheduledAt.UTC(), "updated_at": time.Now().UTC()}).Error; err != nil {
			return err
		}
		return audit.Record(tx, audit.Event{TenantID: &tenantID, Actor: actor, Action: "tenant.lifecycle_message_edited",
			Target: m.Key, Detail: audit.Detail(map[string]any{"scheduled_at": e.ScheduledAt.UTC(), "subject": e.Subject})})
	})
}

func templateError(err error) string {
	msg := err.Error()
	if i := strings.LastIndex(msg, ": "); i >= 0 {
		msg = msg[i+2:]
	}
	return msg + ". Use fields such as {{.Tenant}}, {{.Reason}}, {{.SuspendDate}}, {{.DegradeDate}}, {{.Contact}}, {{.ExportKeepDays}}, {{.RetentionDays}}."
}

// SendDue queues every campaign message whose time has come (and whose step has happened: the
// suspension message once suspended, the export message once the export is done) to each active
// tenant user, one outbox row per address with a dedup key, so a re-run never duplicates.
func (s *Service) SendDue(ctx context.Context) (int, error) {
	now := s.Now()
	var due []Message
	err := s.d.App.WithContext(ctx).Where("sent_at IS NULL AND NOT skipped AND scheduled_at <= ?", now).
		Where("run = (SELECT l.run FROM tenantry.tenant_lifecycles l WHERE l.tenant_id = lifecycle_messages.tenant_id AND l.cancelled_at IS NULL)").
		Order("scheduled_at, id").Limit(200).Find(&due).Error
	if err != nil {
		return 0, err
	}
	sent := 0
	for _, m := range due {
		t, err := s.tenantByID(ctx, m.TenantID)
		if err != nil {
			return sent, err
		}
		ready, err := s.stepReached(ctx, t, m.Key)
		if err != nil {
			return sent, err
		}
		if !ready {
			continue
		}
		if err := s.send(ctx, t, m); err != nil {
			return sent, fmt.Errorf("campaign message %d: %w", m.ID, err)
		}
		sent++
	}
	return sent, nil
}

func (s *Service) stepReached(ctx context.Context, t tenant.Tenant, key string) (bool, error) {
	switch key {
	case "suspended":
		return t.State == Suspended || t.State == Exported, nil
	case "export_ready":
		if t.State != Exported {
			return false, nil
		}
		_, ok, err := s.LatestExport(ctx, t.ID, true)
		return ok, err
	}
	return true, nil
}

type recipient struct {
	Email string
	Name  string
}

// Preview renders a campaign message as its recipients will read it.
func (s *Service) Preview(ctx context.Context, t tenant.Tenant, m Message) (subject, body string, err error) {
	p, _, err := s.PlanOf(ctx, t.ID)
	if err != nil {
		return "", "", err
	}
	d := dataFor(t, p)
	if subject, err = render(m.Subject, d); err != nil {
		return "", "", err
	}
	body, err = render(m.Body, d)
	return subject, body, err
}

func dataFor(t tenant.Tenant, p Plan) messageData {
	return messageData{Tenant: t.Name, Reason: p.Reason, Contact: p.Policy.ContactEmail,
		DegradeDate: p.DegradeAt.Format(dateLayout), SuspendDate: p.SuspendAt.Format(dateLayout),
		ExportKeepDays: p.Policy.ExportKeepDays, RetentionDays: p.Policy.RetentionDays, Notice: p.NoticeDays}
}

func (s *Service) send(ctx context.Context, t tenant.Tenant, m Message) error {
	p, _, err := s.PlanOf(ctx, t.ID)
	if err != nil {
		return err
	}
	var rcpts []recipient
	err = s.d.InTenant(ctx, t.ID, func(tx *gorm.DB) error {
		return tx.Table(db.TenantSchema(t.ID) + ".users").Select("email, name").Where("disabled_at IS NULL").Order("email").Scan(&rcpts).Error
	})
	if err != nil && !missingPlane(err) {
		return err
	}
	d := dataFor(t, p)
	subject, err := render(m.Subject, d)
	if err != nil {
		return err
	}
	body, err := render(m.Body, d)
	if err != nil {
		return err
	}
	htmlBody := "<div style=\"font-family:sans-serif\"><p style=\"font-weight:600\">" + html.EscapeString(t.Name) + "</p><pre style=\"white-space:pre-wrap;font-family:inherit\">" +
		html.EscapeString(body) + "</pre><p style=\"color:#64748b;font-size:12px\">Sent by Tenantry on behalf of your provider.</p></div>"
	return s.d.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		n := 0
		for _, r := range rcpts {
			if _, err := mail.Enqueue(tx, mail.Message{TenantID: &t.ID, Kind: "lifecycle." + m.Key, DedupKey: dedupPrefix(m) + strings.ToLower(r.Email),
				To: r.Email, Subject: subject, Text: body, HTML: htmlBody}); err != nil {
				return err
			}
			n++
		}
		res := tx.Model(&Message{}).Where("id = ? AND sent_at IS NULL", m.ID).Updates(map[string]any{"sent_at": s.Now(), "recipients": n})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return nil
		}
		return audit.Record(tx, audit.Event{TenantID: &t.ID, Actor: "system:lifecycle", Action: "tenant.lifecycle_message_sent", Target: t.Slug,
			Detail: audit.Detail(map[string]any{"message": m.Key, "recipients": n})})
	})
}

// missingPlane is true for errors of a tenant whose schema or role no longer exists.
func missingPlane(err error) bool {
	var code string
	var pe interface{ SQLState() string }
	if errors.As(err, &pe) {
		code = pe.SQLState()
	}
	return code == "3F000" || code == "42P01" || code == "22023"
}
