package tenantauth

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/internal/db"
	"github.com/tenantry/tenantry/internal/identity"
	"github.com/tenantry/tenantry/internal/mail"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// An invitation asks a person to join a tenant with a role. The e-mail carries a link with a
// random token; only its SHA-256 is stored, so the table does not give the link away. The link
// works once, until it expires.

// InvitationTTL is how long an invitation link works.
const InvitationTTL = 7 * 24 * time.Hour

// Invitation link errors, each shown to the visitor as its own clear message.
var (
	ErrInvitationUnknown = errors.New("tenantauth: no invitation for this link")
	ErrInvitationExpired = errors.New("tenantauth: the invitation has expired")
	ErrInvitationUsed    = errors.New("tenantauth: the invitation was already used")
)

// Invitation is a row of the tenant schema's invitations table.
type Invitation struct {
	ID         int64
	Email      string
	Role       Role
	TokenHash  []byte
	ExpiresAt  time.Time
	AcceptedAt *time.Time
	CreatedBy  string
	CreatedAt  time.Time
}

// TableName is the tenant schema's invitations table.
func (Invitation) TableName() string { return "invitations" }

// TenantSchema marks the table as living in each tenant's own schema.
func (Invitation) TenantSchema() {}

// NewInvitation is the input for inviting a person.
type NewInvitation struct {
	Email string
	Role  Role
	// DedupKey makes the e-mail idempotent (see mail.Message.DedupKey); empty means one per
	// invitation.
	DedupKey string
	// BaseURL prefixes the link in the e-mail (e.g. "https://tenantry.example.com"); empty gives
	// a link relative to the server.
	BaseURL string
}

// InvitationPath is the address of the set-password page for token in tenant slug's portal.
func InvitationPath(slug, token string) string { return "/t/" + slug + "/invitations/" + token }

func hashToken(token string) []byte {
	sum := sha256.Sum256([]byte(token))
	return sum[:]
}

// Invite invites a person to tenant t: it stores the invitation in the tenant's schema, records
// it in the tenant's audit trail and queues the e-mail with the single-use link, all in one
// transaction. actor is who invites (a tenant admin's e-mail, "platform:…", "provisioning").
func (s *Service) Invite(ctx context.Context, t tenant.Tenant, actor string, n NewInvitation) (Invitation, error) {
	var inv Invitation
	err := s.db.InTenant(ctx, t.ID, func(tx *gorm.DB) error {
		var err error
		inv, err = InviteTx(tx, t, actor, n)
		return err
	})
	return inv, err
}

// InviteTx is Invite inside tx, a transaction opened by db.InTenant for t.
func InviteTx(tx *gorm.DB, t tenant.Tenant, actor string, n NewInvitation) (Invitation, error) {
	email := strings.ToLower(strings.TrimSpace(n.Email))
	name := "invitee"
	errs := validation.Errors{}
	identity.ValidatePerson(errs, &email, &name, strings.Repeat("x", identity.MinPasswordLength))
	if n.Role != RoleAdmin && n.Role != RoleMember {
		errs.Add("role", "Choose admin or member.")
	}
	if err := errs.Err(); err != nil {
		return Invitation{}, err
	}
	var exists int64
	if err := tx.Model(&User{}).Where("email = ?", email).Count(&exists).Error; err != nil {
		return Invitation{}, err
	}
	if exists > 0 {
		return Invitation{}, validation.Errors{"email": "A user with this e-mail already exists in this tenant."}
	}
	raw := make([]byte, 32)
	if _, err := rand.Read(raw); err != nil {
		return Invitation{}, err
	}
	token := base64.RawURLEncoding.EncodeToString(raw)
	now := time.Now().UTC()
	inv := Invitation{Email: email, Role: n.Role, TokenHash: hashToken(token), ExpiresAt: now.Add(InvitationTTL), CreatedBy: actor, CreatedAt: now}
	if err := tx.Create(&inv).Error; err != nil {
		return Invitation{}, fmt.Errorf("tenantauth: store invitation: %w", err)
	}
	if err := audit.RecordTenant(tx, audit.TenantEvent{Actor: actor, Action: "invitation.created", Target: email,
		Detail: audit.Detail(map[string]any{"role": n.Role, "invitation_id": inv.ID, "expires_at": inv.ExpiresAt})}); err != nil {
		return Invitation{}, err
	}
	link := strings.TrimRight(n.BaseURL, "/") + InvitationPath(t.Slug, token)
	dedup := n.DedupKey
	if dedup == "" {
		dedup = "invitation:" + strconv.FormatInt(t.ID, 10) + ":" + strconv.FormatInt(inv.ID, 10)
	}
	tenantID := t.ID
	err := db.AsPlatform(tx, func(ptx *gorm.DB) error {
		_, err := mail.Enqueue(ptx, mail.Message{TenantID: &tenantID, Kind: "invitation", DedupKey: dedup, To: email,
			Subject: "You are invited to " + oneLine(t.Name) + " on Tenantry",
			Text: fmt.Sprintf("Hello,\n\nYou are invited to join %s on Tenantry as %s.\n\nSet your password here (the link works once, until %s):\n%s\n\nIf you did not expect this, ignore this message.\n",
				t.Name, n.Role, inv.ExpiresAt.Format("2 Jan 2006 15:04 MST"), link)})
		return err
	})
	return inv, err
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// InvitationByToken returns tenant tenantID's invitation for token, or ErrInvitationUnknown,
// ErrInvitationUsed or ErrInvitationExpired.
func (s *Service) InvitationByToken(ctx context.Context, tenantID int64, token string) (Invitation, error) {
	var inv Invitation
	err := s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		var err error
		inv, err = usableInvitation(tx, token, false)
		return err
	})
	return inv, err
}

func usableInvitation(tx *gorm.DB, token string, lock bool) (Invitation, error) {
	var inv Invitation
	if token == "" || len(token) > 100 {
		return inv, ErrInvitationUnknown
	}
	q := tx.Where("token_hash = ?", hashToken(token))
	if lock {
		q = q.Clauses(clause.Locking{Strength: "UPDATE"})
	}
	err := q.Take(&inv).Error
	switch {
	case errors.Is(err, gorm.ErrRecordNotFound):
		return inv, ErrInvitationUnknown
	case err != nil:
		return inv, err
	case inv.AcceptedAt != nil:
		return inv, ErrInvitationUsed
	case time.Now().After(inv.ExpiresAt):
		return inv, ErrInvitationExpired
	}
	return inv, nil
}

// AcceptInvitation sets the invited person's name and password: it creates the user with the
// invited role and marks the invitation accepted, in one transaction, so a link works exactly
// once. The password must meet the tenant's policy (security.password_min_length).
func (s *Service) AcceptInvitation(ctx context.Context, tenantID int64, token, name, password string) (User, error) {
	t, err := s.Tenant(ctx, tenantID)
	if err != nil {
		return User{}, err
	}
	if err := CheckOpen(t); err != nil {
		return User{}, err
	}
	if _, err := s.InvitationByToken(ctx, tenantID, token); err != nil {
		return User{}, err
	}
	email := "invitee@example.com"
	errs := validation.Errors{}
	identity.ValidatePerson(errs, &email, &name, password)
	if errs["password"] == "" {
		if err := s.PasswordPolicy(ctx, t, errs, "password", password); err != nil {
			return User{}, err
		}
	}
	if err := errs.Err(); err != nil {
		return User{}, err
	}
	hash, err := identity.HashPassword(password)
	if err != nil {
		return User{}, err
	}
	var u User
	err = s.db.InTenant(ctx, tenantID, func(tx *gorm.DB) error {
		inv, err := usableInvitation(tx, token, true)
		if err != nil {
			return err
		}
		now := time.Now().UTC()
		u = User{Email: inv.Email, Name: name, Role: inv.Role, PasswordHash: hash, SessionEpoch: 1, LastSignInAt: &now}
		if err := tx.Create(&u).Error; err != nil {
			if errors.Is(err, gorm.ErrDuplicatedKey) {
				return ErrInvitationUsed
			}
			return err
		}
		if err := tx.Model(&inv).Update("accepted_at", now).Error; err != nil {
			return err
		}
		return audit.RecordTenant(tx, audit.TenantEvent{Actor: inv.Email, Action: "invitation.accepted", Target: inv.Email,
			Detail: audit.Detail(map[string]any{"invitation_id": inv.ID, "role": inv.Role, "name": name})})
	})
	if err != nil {
		return User{}, err
	}
	return u, nil
}
