package lifecycle

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/go-pdf/fpdf"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/tenant"
)

// CertificateFormat names the certificate document's format.
const CertificateFormat = "tenantry.destruction-certificate/v1"

// Certificate is the certificate of data destruction: what was destroyed, when, under which
// policy and by whom. Its canonical form is json.Marshal of this struct (fields in this order).
type Certificate struct {
	Format      string        `json:"format"`
	ID          string        `json:"id"`
	IssuedAt    time.Time     `json:"issued_at"`
	Tenant      CertTenant    `json:"tenant"`
	Operator    string        `json:"operator"`
	Reason      string        `json:"reason"`
	RequestedBy string        `json:"requested_by"`
	Policy      Policy        `json:"policy"`
	Timeline    CertTimeline  `json:"timeline"`
	Destroyed   CertDestroyed `json:"destroyed"`
	Retained    []TableCount  `json:"retained"`
	Statement   string        `json:"statement"`
}

// CertTenant names the tenant.
type CertTenant struct {
	ID   int64  `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
	Plan string `json:"plan"`
}

// CertTimeline dates the decommissioning.
type CertTimeline struct {
	StartedAt   time.Time  `json:"started_at"`
	SuspendedAt time.Time  `json:"suspended_at"`
	ExportedAt  *time.Time `json:"exported_at"`
	PurgeAfter  *time.Time `json:"purge_after"`
	PurgedAt    time.Time  `json:"purged_at"`
}

// CertDestroyed lists what was destroyed.
type CertDestroyed struct {
	Schema            string           `json:"schema"`
	Role              string           `json:"role"`
	Tables            []TableCount     `json:"tables"`
	PlatformRows      []TableCount     `json:"platform_rows"`
	KeyIDs            []uint32         `json:"key_ids"`
	KeysetDestroyedAt *time.Time       `json:"keyset_destroyed_at"`
	ExportArchives    []ExportDeletion `json:"export_archives"`
}

// SignedCertificate is the certificate file: the certificate and its signature.
type SignedCertificate struct {
	Certificate Certificate `json:"certificate"`
	Signature   Signature   `json:"signature"`
}

// Signature is an ed25519 signature over the certificate's canonical JSON.
type Signature struct {
	Algorithm string `json:"algorithm"`
	KeyID     string `json:"key_id"`
	PublicKey string `json:"public_key"`
	Value     string `json:"value"`
}

func buildCertificate(t tenant.Tenant, p Plan, f Facts, now time.Time, keyDestroyedAt *time.Time, keysManaged bool) Certificate {
	pol := Policy(p.Policy)
	operator := systemActor
	if p.PurgeOperator != nil {
		operator = *p.PurgeOperator
	}
	c := Certificate{
		Format: CertificateFormat, ID: fmt.Sprintf("TDC-%d-%d", t.ID, p.StartedAt.Unix()), IssuedAt: now.UTC().Truncate(time.Second),
		Tenant: CertTenant{ID: t.ID, Slug: t.Slug, Name: t.Name, Plan: t.PlanKey}, Operator: operator,
		Reason: p.Reason, RequestedBy: p.RequestedBy, Policy: pol,
		Timeline: CertTimeline{StartedAt: p.StartedAt.UTC().Truncate(time.Second), SuspendedAt: p.SuspendAt.UTC().Truncate(time.Second),
			ExportedAt: truncPtr(p.ExportedAt), PurgeAfter: truncPtr(p.PurgeAfter), PurgedAt: now.UTC().Truncate(time.Second)},
		Destroyed: CertDestroyed{Schema: f.Schema, Role: f.Role, Tables: f.Tables, PlatformRows: f.PlatformRows,
			KeyIDs: f.KeyIDs, KeysetDestroyedAt: truncPtr(keyDestroyedAt), ExportArchives: f.Exports},
		Retained: f.Retained,
		Statement: "The tenant's database schema and role were dropped, its rows in the platform's tables deleted, its export archives deleted" +
			map[bool]string{true: " and its encryption keyset destroyed, so anything encrypted with it can never be decrypted again.", false: "."}[keysManaged] +
			" The platform audit trail and the evidence listed as retained are kept.",
	}
	if c.Retained == nil {
		c.Retained = []TableCount{}
	}
	return c
}

func truncPtr(t *time.Time) *time.Time {
	if t == nil {
		return nil
	}
	u := t.UTC().Truncate(time.Second)
	return &u
}

// signer holds the platform's certificate signing key.
type signer struct {
	priv ed25519.PrivateKey
	pub  ed25519.PublicKey
}

func keyID(pub ed25519.PublicKey) string {
	sum := sha256.Sum256(pub)
	return hex.EncodeToString(sum[:8])
}

func (sg *signer) sign(c Certificate) ([]byte, error) {
	payload, err := json.Marshal(c)
	if err != nil {
		return nil, err
	}
	sc := SignedCertificate{Certificate: c, Signature: Signature{Algorithm: "ed25519", KeyID: keyID(sg.pub),
		PublicKey: base64.StdEncoding.EncodeToString(sg.pub), Value: base64.StdEncoding.EncodeToString(ed25519.Sign(sg.priv, payload))}}
	return encodeSigned(sc)
}

// encodeSigned is the one byte-exact form of a certificate file.
func encodeSigned(sc SignedCertificate) ([]byte, error) {
	b, err := json.MarshalIndent(sc, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

// Secret names in platform_secrets.
const (
	signingKeySecret    = "certificate_signing_key"    // the ed25519 seed, encrypted with the master key
	signingPublicSecret = "certificate_signing_public" // the public key, in clear, for /verify and the CLI
)

var signingAD = []byte("tenantry.certificate_signing_key.v1")

// signingKey loads (or, the first time, generates) the platform's certificate signing key. The
// seed is kept in platform_secrets encrypted with the master key, like tenant keysets, so every
// node shares it and nobody reads it from a database dump.
func (s *Service) signingKey(ctx context.Context) (*signer, error) {
	s.signMu.Lock()
	defer s.signMu.Unlock()
	if s.signer != nil {
		return s.signer, nil
	}
	if s.master == nil {
		return nil, ErrNoSigningKey
	}
	gdb := s.d.App.WithContext(ctx)
	read := func() ([]byte, error) {
		var row struct{ Value []byte }
		err := gdb.Raw("SELECT value FROM tenantry.platform_secrets WHERE name = ?", signingKeySecret).Scan(&row).Error
		return row.Value, err
	}
	enc, err := read()
	if err != nil {
		return nil, err
	}
	if len(enc) == 0 {
		pub, priv, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return nil, err
		}
		wrapped, err := s.master.Encrypt(priv.Seed(), signingAD)
		if err != nil {
			return nil, err
		}
		err = gdb.Transaction(func(tx *gorm.DB) error {
			if err := tx.Exec("INSERT INTO tenantry.platform_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", signingKeySecret, wrapped).Error; err != nil {
				return err
			}
			return tx.Exec("INSERT INTO tenantry.platform_secrets (name, value) VALUES (?, ?) ON CONFLICT (name) DO NOTHING", signingPublicSecret, []byte(pub)).Error
		})
		if err != nil {
			return nil, err
		}
		if enc, err = read(); err != nil {
			return nil, err
		}
	}
	seed, err := s.master.Decrypt(enc, signingAD)
	if err != nil {
		return nil, fmt.Errorf("lifecycle: unwrap the certificate signing key (wrong master key?): %w", err)
	}
	if len(seed) != ed25519.SeedSize {
		return nil, errors.New("lifecycle: the stored certificate signing key is malformed")
	}
	priv := ed25519.NewKeyFromSeed(seed)
	s.signer = &signer{priv: priv, pub: priv.Public().(ed25519.PublicKey)}
	return s.signer, nil
}

// PublicKey returns the platform's certificate verification key; ok is false until the first
// certificate made one (or EnsureSigningKey did).
func (s *Service) PublicKey(ctx context.Context) (ed25519.PublicKey, bool, error) {
	return PublicKeyFrom(s.d.App.WithContext(ctx))
}

// PublicKeyFrom reads the platform's certificate verification key from the control plane.
func PublicKeyFrom(gdb *gorm.DB) (ed25519.PublicKey, bool, error) {
	var row struct{ Value []byte }
	if err := gdb.Raw("SELECT value FROM tenantry.platform_secrets WHERE name = ?", signingPublicSecret).Scan(&row).Error; err != nil {
		return nil, false, err
	}
	pub := row.Value
	if len(pub) != ed25519.PublicKeySize {
		return nil, false, nil
	}
	return ed25519.PublicKey(pub), true, nil
}

// CanSign reports whether a master key is configured, so certificates can be signed.
func (s *Service) CanSign() bool { return s.master != nil }

// EnsureSigningKey makes the signing key exist (so /verify can publish it) when a master key is
// configured; without one it does nothing.
func (s *Service) EnsureSigningKey(ctx context.Context) error {
	if s.master == nil {
		return nil
	}
	_, err := s.signingKey(ctx)
	return err
}

// FormatKey renders a public key for people: base64 and its key id.
func FormatKey(pub ed25519.PublicKey) (b64, id string) {
	return base64.StdEncoding.EncodeToString(pub), keyID(pub)
}

// Verification errors.
var (
	ErrNotCanonical  = errors.New("certificate: the file is not in its exact signed form (a byte was added, removed or changed)")
	ErrBadSignature  = errors.New("certificate: the signature does not match the content")
	ErrUntrustedKey  = errors.New("certificate: signed by a key that is not this platform's")
	ErrNotCertificat = errors.New("certificate: not a Tenantry certificate of destruction")
)

// VerifyCertificate checks a certificate file: it must be exactly the bytes Tenantry wrote (any
// edit, even of spacing, fails), its ed25519 signature must verify over the certificate, and,
// when trusted is given, the key must be one of them. It returns the certificate.
func VerifyCertificate(doc []byte, trusted ...ed25519.PublicKey) (SignedCertificate, error) {
	var sc SignedCertificate
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&sc); err != nil {
		return sc, fmt.Errorf("%w: %v", ErrNotCertificat, err)
	}
	if sc.Certificate.Format != CertificateFormat || sc.Signature.Algorithm != "ed25519" {
		return sc, ErrNotCertificat
	}
	again, err := encodeSigned(sc)
	if err != nil {
		return sc, err
	}
	if !bytes.Equal(again, doc) {
		return sc, ErrNotCanonical
	}
	pub, err := base64.StdEncoding.DecodeString(sc.Signature.PublicKey)
	if err != nil || len(pub) != ed25519.PublicKeySize {
		return sc, ErrBadSignature
	}
	sig, err := base64.StdEncoding.DecodeString(sc.Signature.Value)
	if err != nil || len(sig) != ed25519.SignatureSize {
		return sc, ErrBadSignature
	}
	if sc.Signature.KeyID != keyID(pub) {
		return sc, ErrBadSignature
	}
	payload, err := json.Marshal(sc.Certificate)
	if err != nil {
		return sc, err
	}
	if !ed25519.Verify(pub, payload, sig) {
		return sc, ErrBadSignature
	}
	if len(trusted) > 0 {
		ok := false
		for _, k := range trusted {
			ok = ok || bytes.Equal(k, pub)
		}
		if !ok {
			return sc, ErrUntrustedKey
		}
	}
	return sc, nil
}

// CertificatePDF renders the certificate for people. The PDF is a rendering; the JSON file is
// what verifies.
func CertificatePDF(sc SignedCertificate) ([]byte, error) {
	c := sc.Certificate
	pdf := fpdf.New("P", "mm", "A4", "")
	pdf.SetTitle("Certificate of data destruction "+c.ID, true)
	pdf.SetCreator("Tenantry", true)
	pdf.SetCompression(true)
	pdf.AddPage()
	tr := pdf.UnicodeTranslatorFromDescriptor("")
	pdf.SetFont("Helvetica", "B", 18)
	pdf.CellFormat(0, 12, "Certificate of data destruction", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 10)
	line := func(k, v string) {
		pdf.SetFont("Helvetica", "B", 10)
		pdf.CellFormat(45, 6, tr(k), "", 0, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 10)
		pdf.MultiCell(0, 6, tr(v), "", "L", false)
	}
	ts := func(t *time.Time) string {
		if t == nil {
			return "-"
		}
		return t.Format(time.RFC3339)
	}
	line("Certificate", c.ID)
	line("Issued", c.IssuedAt.Format(time.RFC3339))
	line("Tenant", fmt.Sprintf("%s (%s, id %d, plan %s)", c.Tenant.Name, c.Tenant.Slug, c.Tenant.ID, c.Tenant.Plan))
	line("Reason", c.Reason)
	line("Requested by", c.RequestedBy)
	line("Purged by", c.Operator)
	line("Policy", fmt.Sprintf("notice %d days, read-only %d days, retention %d days (%s), compliance %s",
		c.Policy.NoticeDays, c.Policy.ReadOnlyDays, c.Policy.RetentionDays, policySource(c.Policy, "retention_days"), c.Policy.Compliance))
	line("Started", c.Timeline.StartedAt.Format(time.RFC3339))
	line("Suspended", c.Timeline.SuspendedAt.Format(time.RFC3339))
	line("Exported", ts(c.Timeline.ExportedAt))
	line("Purged", c.Timeline.PurgedAt.Format(time.RFC3339))
	line("Schema and role", c.Destroyed.Schema+" / "+c.Destroyed.Role+" (dropped)")
	keyIDs := ""
	for i, k := range c.Destroyed.KeyIDs {
		if i > 0 {
			keyIDs += ", "
		}
		keyIDs += strconv.FormatUint(uint64(k), 10)
	}
	if keyIDs == "" {
		keyIDs = "none"
	}
	line("Keyset destroyed", keyIDs+" at "+ts(c.Destroyed.KeysetDestroyedAt))
	pdf.Ln(2)
	pdf.SetFont("Helvetica", "B", 11)
	pdf.CellFormat(0, 8, "Tables destroyed", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 9)
	table := func(rows []TableCount) {
		for _, r := range rows {
			pdf.CellFormat(120, 5, tr(r.Name), "B", 0, "L", false, 0, "")
			pdf.CellFormat(40, 5, strconv.FormatInt(r.Rows, 10)+" rows", "B", 1, "R", false, 0, "")
		}
	}
	table(c.Destroyed.Tables)
	if len(c.Destroyed.PlatformRows) > 0 {
		pdf.SetFont("Helvetica", "B", 11)
		pdf.CellFormat(0, 8, "Rows deleted from platform tables", "", 1, "L", false, 0, "")
		pdf.SetFont("Helvetica", "", 9)
		table(c.Destroyed.PlatformRows)
	}
	pdf.SetFont("Helvetica", "B", 11)
	pdf.CellFormat(0, 8, "Export archives deleted", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 9)
	if len(c.Destroyed.ExportArchives) == 0 {
		pdf.CellFormat(0, 5, "none", "", 1, "L", false, 0, "")
	}
	for _, e := range c.Destroyed.ExportArchives {
		pdf.MultiCell(0, 5, tr(e.File+"  sha256 "+e.SHA256), "", "L", false)
	}
	pdf.SetFont("Helvetica", "B", 11)
	pdf.CellFormat(0, 8, "Retained", "", 1, "L", false, 0, "")
	pdf.SetFont("Helvetica", "", 9)
	table(c.Retained)
	pdf.Ln(3)
	pdf.SetFont("Helvetica", "", 9)
	pdf.MultiCell(0, 5, tr(c.Statement), "", "L", false)
	pdf.Ln(3)
	pdf.SetFont("Courier", "", 8)
	pdf.MultiCell(0, 4, "Signature (ed25519, key "+sc.Signature.KeyID+"):\n"+sc.Signature.Value+"\nPublic key: "+sc.Signature.PublicKey, "", "L", false)
	pdf.SetFont("Helvetica", "I", 8)
	pdf.MultiCell(0, 4, "This PDF renders the certificate for people. The JSON file is the signed original: verify it with `tenantry verify-certificate FILE` or on the platform's /verify page.", "", "L", false)
	var b bytes.Buffer
	if err := pdf.Output(&b); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
