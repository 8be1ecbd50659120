package signup

import (
	"bytes"
	"context"
	"fmt"
	"html/template"
	"strconv"
	"strings"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/mail"
	"github.com/tenantry/tenantry/internal/tenant"
)

// Look is what a branded page or e-mail shows: a name, a logo and two colours (#rrggbb, checked
// where they are stored and again here before they reach a style attribute).
type Look struct {
	Name    string
	LogoURL string
	Primary string
	Accent  string
}

// BrandLook is b's look as stored on the brand.
func BrandLook(b Brand) Look {
	return Look{Name: b.DisplayName, LogoURL: b.LogoURL, Primary: b.PrimaryColour, Accent: b.AccentColour}.Safe()
}

// LookOf is b's look for its pages and e-mails: a reseller's brand without a logo of its own
// shows the reseller tenant's branding logo.
func (s *Service) LookOf(ctx context.Context, b Brand) (Look, error) {
	l := BrandLook(b)
	if l.LogoURL != "" || b.TenantID == nil {
		return l, nil
	}
	var owner tenant.Tenant
	if err := s.db.App.WithContext(ctx).Take(&owner, *b.TenantID).Error; err != nil {
		return l, err
	}
	tl, err := s.TenantLook(ctx, owner)
	if err != nil {
		return l, err
	}
	l.LogoURL = tl.LogoURL
	return l.Safe(), nil
}

// Safe returns l with colours that are not #rrggbb replaced by the defaults and a logo that is
// not on this server dropped.
func (l Look) Safe() Look {
	if !colourRE.MatchString(l.Primary) {
		l.Primary = "#4f46e5"
	}
	if !colourRE.MatchString(l.Accent) {
		l.Accent = l.Primary
	}
	if l.LogoURL != "" && !logoPathRE.MatchString(l.LogoURL) {
		l.LogoURL = ""
	}
	if l.Name == "" {
		l.Name = "Tenantry"
	}
	return l
}

var mailHTML = template.Must(template.New("mail").Parse(`<!DOCTYPE html>
<html lang="en"><body style="margin:0;padding:0;background:#f8fafc;font-family:Arial,Helvetica,sans-serif;color:#1e293b">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" style="background:#f8fafc;padding:24px 0"><tr><td align="center">
<table role="presentation" width="560" cellpadding="0" cellspacing="0" style="max-width:560px;background:#ffffff;border-radius:8px;border-top:6px solid {{.Look.Primary}}">
<tr><td style="padding:24px 32px 8px 32px">{{if .LogoURL}}<img src="{{.LogoURL}}" alt="{{.Look.Name}}" height="40" style="display:block;height:40px;margin-bottom:12px">{{end}}
<p style="margin:0;font-size:20px;font-weight:bold;color:{{.Look.Primary}}">{{.Look.Name}}</p></td></tr>
<tr><td style="padding:8px 32px 8px 32px;font-size:15px;line-height:22px">{{range .Paragraphs}}<p style="margin:0 0 14px 0">{{.}}</p>{{end}}</td></tr>
{{if .ButtonURL}}<tr><td style="padding:8px 32px 24px 32px"><a href="{{.ButtonURL}}" style="display:inline-block;background:{{.Look.Primary}};color:#ffffff;text-decoration:none;font-weight:bold;padding:12px 20px;border-radius:6px">{{.ButtonLabel}}</a>
<p style="margin:14px 0 0 0;font-size:12px;color:#64748b">Or paste this address into your browser: <span style="color:{{.Look.Accent}}">{{.ButtonURL}}</span></p></td></tr>{{end}}
{{range .Footer}}<tr><td style="padding:0 32px 16px 32px;font-size:12px;color:#64748b">{{.}}</td></tr>{{end}}
</table></td></tr></table></body></html>`))

type mailView struct {
	Look        Look
	LogoURL     string
	Paragraphs  []string
	ButtonURL   string
	ButtonLabel string
	Footer      []string
}

// render builds the text and HTML bodies of a branded message.
func render(l Look, baseURL string, paragraphs []string, buttonLabel, buttonURL string, footer ...string) (string, string, error) {
	l = l.Safe()
	v := mailView{Look: l, Paragraphs: paragraphs, ButtonURL: buttonURL, ButtonLabel: buttonLabel, Footer: footer}
	if l.LogoURL != "" && baseURL != "" {
		v.LogoURL = baseURL + l.LogoURL // an e-mail needs an absolute address
	}
	var h bytes.Buffer
	if err := mailHTML.Execute(&h, v); err != nil {
		return "", "", err
	}
	var t strings.Builder
	t.WriteString(l.Name + "\n\n")
	for _, p := range paragraphs {
		t.WriteString(p + "\n\n")
	}
	if buttonURL != "" {
		t.WriteString(buttonLabel + ":\n" + buttonURL + "\n\n")
	}
	for _, f := range footer {
		t.WriteString(f + "\n")
	}
	return t.String(), h.String(), nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

func (s *Service) mailVerify(tx *gorm.DB, b Brand, l Look, su Signup, token string) error {
	link := s.baseURL + VerifyPath(token)
	text, html, err := render(l, s.baseURL, []string{
		"Hello,",
		fmt.Sprintf("You asked for a workspace called %s at the address “%s”. Confirm your e-mail address to continue.", su.OrgName, su.Slug),
	}, "Confirm my e-mail address", link,
		fmt.Sprintf("The link works once, until %s. If you did not sign up, ignore this message: nothing is created without it.", su.ExpiresAt.Format("2 Jan 2006 15:04 MST")))
	if err != nil {
		return err
	}
	_, err = mail.Enqueue(tx, mail.Message{TenantID: b.TenantID, Kind: "signup.verify", DedupKey: "signup.verify:" + strconv.FormatInt(su.ID, 10),
		To: su.Email, Subject: "Confirm your e-mail address for " + oneLine(l.Name), Text: text, HTML: html})
	return err
}

func (s *Service) mailRejected(tx *gorm.DB, b Brand, l Look, su Signup) error {
	text, html, err := render(l, s.baseURL, []string{
		"Hello,",
		fmt.Sprintf("Your request for the workspace %s (“%s”) was not approved.", su.OrgName, su.Slug),
		"The reason given: " + su.Reason,
	}, "", "", "Reply to this message if you have questions.")
	if err != nil {
		return err
	}
	_, err = mail.Enqueue(tx, mail.Message{TenantID: b.TenantID, Kind: "signup.rejected", DedupKey: "signup.rejected:" + strconv.FormatInt(su.ID, 10),
		To: su.Email, Subject: "Your signup for " + oneLine(l.Name) + " was not approved", Text: text, HTML: html})
	return err
}

// mailReady tells the visitor their tenant is ready, in the tenant's own look l (inherited from
// the reseller's brand unless set).
func (s *Service) mailReady(tx *gorm.DB, l Look, t tenant.Tenant, su Signup) error {
	text, html, err := render(l, s.baseURL, []string{
		"Hello,",
		fmt.Sprintf("Your workspace %s is ready. Sign in with your e-mail address and the password you chose.", t.Name),
	}, "Sign in to "+t.Name, s.baseURL+"/t/"+t.Slug+"/login")
	if err != nil {
		return err
	}
	_, err = mail.Enqueue(tx, mail.Message{TenantID: &t.ID, Kind: "signup.ready", DedupKey: "signup.ready:" + strconv.FormatInt(su.ID, 10),
		To: su.Email, Subject: t.Name + " is ready", Text: text, HTML: html})
	return err
}
