package signup

import (
	"fmt"
	"regexp"
	"time"

	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/mail"
)

var invitationLinkRE = regexp.MustCompile(`\S*/t/[a-z0-9-]+/invitations/[A-Za-z0-9_-]+`)

// BrandInvitationTx redraws the invitation e-mail queued under dedupKey in look l, the tenant's:
// its name in the subject, and a branded HTML part beside the text, with the same single-use
// link. It runs in ptx, the platform side of the transaction that queued the message, so the
// message is never seen, let alone sent, unbranded.
func (s *Service) BrandInvitationTx(ptx *gorm.DB, l Look, dedupKey, role string, expires time.Time) error {
	var q mail.Queued
	if err := ptx.Where("dedup_key = ? AND kind = 'invitation'", dedupKey).Take(&q).Error; err != nil {
		return fmt.Errorf("signup: the invitation e-mail %s: %w", dedupKey, err)
	}
	link := invitationLinkRE.FindString(q.TextBody)
	if link == "" {
		return fmt.Errorf("signup: no invitation link in e-mail %s", dedupKey)
	}
	l = l.Safe()
	text, html, err := render(l, s.baseURL, []string{
		"Hello,",
		fmt.Sprintf("You are invited to join %s as %s.", l.Name, role),
	}, "Set your password", link,
		fmt.Sprintf("The link works once, until %s. If you did not expect this, ignore this message.", expires.UTC().Format("2 Jan 2006 15:04 MST")))
	if err != nil {
		return err
	}
	return ptx.Model(&mail.Queued{}).Where("id = ?", q.ID).Updates(map[string]any{
		"subject": "You are invited to " + oneLine(l.Name), "text_body": text, "html_body": html}).Error
}
