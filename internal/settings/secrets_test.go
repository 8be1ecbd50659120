package settings_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"image"
	"image/color"
	"image/png"
	"strings"
	"testing"

	"github.com/tenantry/tenantry/internal/db/dbtest"
	"github.com/tenantry/tenantry/internal/keys"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
)

// A secret is stored encrypted with its tenant's key, never shown by Effective, revealed only
// through Reveal (also to descendants, with the owner's key), and refused at platform level.
func TestSecrets(t *testing.T) {
	d := dbtest.Open(t)
	ctx := context.Background()
	mk := make([]byte, keys.MasterKeySize)
	_, _ = rand.Read(mk)
	master, err := keys.NewLocalMaster(mk)
	if err != nil {
		t.Fatal(err)
	}
	k := keys.NewService(d.App, master, keys.WithCacheTTL(0))
	ts := tenant.NewService(d, dbtest.Logger(t), tenant.WithKeys(k))
	s := settings.NewService(d.App, ts).WithKeys(k)
	parent, err := ts.Create(ctx, "test", tenant.NewTenant{Slug: "sec-parent", Name: "Sec Parent", PlanKey: "free"})
	if err != nil {
		t.Fatal(err)
	}
	child, err := ts.Create(ctx, "test", tenant.NewTenant{Slug: "sec-child", Name: "Sec Child", PlanKey: "free", ParentSlug: "sec-parent"})
	if err != nil {
		t.Fatal(err)
	}
	const secret = "whsec_do-not-show-me-4242"
	const key = "integrations.webhook_secret"
	if _, err := s.Set(ctx, "ops", nil, key, secret, false); validation.Fields(err)["value"] == "" {
		t.Fatalf("platform secret: %v", err)
	}
	if _, err := s.Set(ctx, "ops", &parent, key, "", false); validation.Fields(err)["value"] == "" {
		t.Fatalf("empty secret: %v", err)
	}
	e, err := s.Set(ctx, "alice@example.com", &parent, key, secret, false)
	if err != nil {
		t.Fatal(err)
	}
	if e.Value != settings.SecretSet || e.Own == nil || *e.Own != settings.SecretSet || e.SetBy != "alice@example.com" {
		t.Fatalf("effective secret %+v", e)
	}
	var stored string
	if err := d.App.Raw("SELECT value FROM tenantry.setting_values WHERE key = ? AND tenant_id = ?", key, parent.ID).Scan(&stored).Error; err != nil {
		t.Fatal(err)
	}
	if stored == "" || strings.Contains(stored, secret) {
		t.Fatalf("stored in clear: %q", stored)
	}
	var auditText string
	if err := d.App.Raw("SELECT string_agg(detail::text, ' ') FROM tenantry.audit_events WHERE action = 'setting.changed'").Scan(&auditText).Error; err != nil {
		t.Fatal(err)
	}
	if strings.Contains(auditText, secret) || strings.Contains(auditText, stored) {
		t.Fatal("the audit trail holds the secret")
	}
	for _, tn := range []tenant.Tenant{parent, child} {
		all, err := s.Effective(ctx, &tn)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range all {
			if strings.Contains(e.Value, secret) || strings.Contains(e.Value, stored) || (e.Own != nil && strings.Contains(*e.Own, secret)) {
				t.Fatalf("%s: Effective shows the secret of %s", tn.Slug, e.Key.Key)
			}
		}
		got, err := s.Reveal(ctx, tn, key)
		if err != nil || string(got) != secret {
			t.Fatalf("%s: reveal %q %v", tn.Slug, got, err)
		}
	}
	if _, err := s.Reveal(ctx, child, "integrations.smtp_password"); !errors.Is(err, settings.ErrNoSecret) {
		t.Fatalf("unset secret: %v", err)
	}
	// Key rotation (keys.Reencrypter) rewrites the ciphertext in place; it still decrypts.
	if n, err := s.Count(ctx, parent.ID); err != nil || n != 1 {
		t.Fatalf("count %d %v", n, err)
	}
	rewrap := func(ct, ad []byte) ([]byte, error) {
		pt, err := k.Decrypt(ctx, parent.ID, ct, ad)
		if err != nil {
			return nil, err
		}
		return k.Encrypt(ctx, parent.ID, pt, ad)
	}
	done := 0
	if err := s.Reencrypt(ctx, parent.ID, rewrap, func(n int) error { done = n; return nil }); err != nil || done != 1 {
		t.Fatalf("reencrypt: %d %v", done, err)
	}
	var rewrapped string
	d.App.Raw("SELECT value FROM tenantry.setting_values WHERE key = ? AND tenant_id = ?", key, parent.ID).Scan(&rewrapped)
	if rewrapped == stored {
		t.Fatal("reencrypt left the ciphertext as it was")
	}
	if got, err := s.Reveal(ctx, child, key); err != nil || string(got) != secret {
		t.Fatalf("after reencrypt: %q %v", got, err)
	}
	stored = rewrapped
	// Moving the ciphertext to another tenant does not decrypt (bound to tenant and key).
	if err := d.App.Exec("INSERT INTO tenantry.setting_values (tenant_id, key, value, set_by) VALUES (?, ?, ?, 'x')", child.ID, key, stored).Error; err != nil {
		t.Fatal(err)
	}
	if _, err := s.Reveal(ctx, child, key); err == nil {
		t.Fatal("a ciphertext copied to another tenant decrypted")
	}
}

func pngBytes(t *testing.T, w, h int) []byte {
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for x := range w {
		img.Set(x, 0, color.RGBA{uint8(x), 10, 200, 255})
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// Image settings take only real PNG or JPEG uploads up to 256 KB, checked by content.
func TestImages(t *testing.T) {
	d := dbtest.Open(t)
	ctx := context.Background()
	good := pngBytes(t, 40, 20)
	big := make([]byte, settings.MaxImageBytes+1)
	copy(big, good)
	for _, tc := range []struct {
		name string
		data []byte
		ok   bool
	}{
		{"png", good, true},
		{"empty", nil, false},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), false},
		{"html named .png", []byte("<html><body>hi</body></html>"), false},
		{"gif", []byte("GIF89a\x01\x00\x01\x00\x00\x00\x00;"), false},
		{"truncated png", good[:20], false},
		{"oversized", big, false},
	} {
		img, err := settings.CheckImage("logo", tc.data)
		if tc.ok != (err == nil) || (!tc.ok && validation.Fields(err)["logo"] == "") {
			t.Errorf("%s: %v", tc.name, err)
		}
		if tc.ok && (img.Width != 40 || img.Height != 20 || img.ContentType != "image/png") {
			t.Errorf("%s: %+v", tc.name, img)
		}
	}
	id, err := settings.StoreImage(d.App, "ops", "logo", good)
	if err != nil {
		t.Fatal(err)
	}
	again, err := settings.StoreImage(d.App, "ops", "logo", good)
	if err != nil || again != id {
		t.Fatalf("stored twice: %s %s %v", id, again, err)
	}
	img, err := settings.LoadImage(ctx, d.App, id)
	if err != nil || !bytes.Equal(img.Data, good) {
		t.Fatalf("load: %v", err)
	}
	ts := tenant.NewService(d, dbtest.Logger(t))
	tn, err := ts.Create(ctx, "test", tenant.NewTenant{Slug: "img-tenant", Name: "Img", PlanKey: "free"})
	if err != nil {
		t.Fatal(err)
	}
	s := settings.NewService(d.App, ts)
	if _, err := s.Set(ctx, "ops", &tn, "branding.logo", strings.Repeat("a", 64), false); validation.Fields(err)["value"] == "" {
		t.Fatalf("unknown image id accepted: %v", err)
	}
	if _, err := s.Set(ctx, "ops", &tn, "branding.logo", "../../etc/passwd", false); validation.Fields(err)["value"] == "" {
		t.Fatalf("bad image id accepted: %v", err)
	}
	e, err := s.Set(ctx, "ops", &tn, "branding.logo", id, false)
	if err != nil || e.Value != id || settings.ImageURL(e.Value) != "/media/images/"+id {
		t.Fatalf("logo %+v %v", e, err)
	}
}
