package web

import (
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/lifecycle"
	"github.com/tenantry/tenantry/views/pages/public"
)

// maxCertificate bounds an uploaded or pasted certificate.
const maxCertificate = 1 << 20

// verifyPage is the public /verify page: the platform's certificate key and the check form.
func (s *Server) verifyPage(c echo.Context) error {
	m, err := s.verifyModel(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, page{Title: "Verify a certificate of destruction", Content: public.VerifyPage(m)})
}

func (s *Server) verifyModel(c echo.Context) (public.Verify, error) {
	m := public.Verify{CSRF: csrfToken(c)}
	pub, ok, err := s.lifecycle.PublicKey(c.Request().Context())
	if err != nil {
		return m, err
	}
	if ok {
		m.PublicKey, m.KeyID = lifecycle.FormatKey(pub)
	}
	return m, nil
}

// verifySubmit checks an uploaded or pasted certificate and shows its content, or why it fails.
func (s *Server) verifySubmit(c echo.Context) error {
	m, err := s.verifyModel(c)
	if err != nil {
		return err
	}
	var doc []byte
	if fh, err := c.FormFile("file"); err == nil && fh.Size > 0 {
		f, err := fh.Open()
		if err != nil {
			return err
		}
		doc, err = io.ReadAll(io.LimitReader(f, maxCertificate+1))
		f.Close()
		if err != nil {
			return err
		}
	} else {
		pasted := c.FormValue("document")
		m.Pasted = pasted
		// Browsers send textarea line breaks as CRLF; the file Tenantry wrote has LF.
		pasted = strings.ReplaceAll(pasted, "\r\n", "\n")
		if pasted != "" && !strings.HasSuffix(pasted, "\n") {
			pasted += "\n"
		}
		doc = []byte(pasted)
	}
	m.Checked = true
	status := http.StatusOK
	switch {
	case len(doc) == 0:
		m.Error, status = "Choose the certificate's JSON file or paste its content.", http.StatusUnprocessableEntity
	case len(doc) > maxCertificate:
		m.Error, status = "This is larger than any certificate (1 MiB at most).", http.StatusUnprocessableEntity
	default:
		pub, ok, err := s.lifecycle.PublicKey(c.Request().Context())
		if err != nil {
			return err
		}
		sc, verr := lifecycle.VerifyCertificate(doc)
		if verr != nil {
			m.Error, status = verifyError(verr), http.StatusUnprocessableEntity
			break
		}
		m.Valid = true
		m.Result = certificateView(sc)
		_, pubKeyID := lifecycle.FormatKey(pub)
		m.Result.Trusted = ok && pubKeyID == sc.Signature.KeyID
	}
	return s.render(c, status, page{Title: "Verify a certificate of destruction", Content: public.VerifyPage(m)})
}

func verifyError(err error) string {
	switch {
	case err == lifecycle.ErrNotCanonical:
		return "The document has been altered: it is not byte for byte the file Tenantry signed."
	case err == lifecycle.ErrBadSignature:
		return "The signature does not match the content: the certificate was altered or not signed by Tenantry."
	}
	return "This is not a Tenantry certificate of destruction (" + err.Error() + ")."
}

func certificateView(sc lifecycle.SignedCertificate) *public.VerifiedCertificate {
	c := sc.Certificate
	v := &public.VerifiedCertificate{ID: c.ID, Tenant: fmt.Sprintf("%s (%s, id %d)", c.Tenant.Name, c.Tenant.Slug, c.Tenant.ID),
		Issued: fmtTime(c.IssuedAt), Purged: fmtTime(c.Timeline.PurgedAt), Operator: c.Operator, Reason: c.Reason,
		Policy: fmt.Sprintf("retention %d days (%s), compliance %s", c.Policy.RetentionDays, c.Policy.Sources["retention_days"], c.Policy.Compliance),
		Schema: c.Destroyed.Schema + " / " + c.Destroyed.Role, SignedKeyID: sc.Signature.KeyID}
	var ids []string
	for _, k := range c.Destroyed.KeyIDs {
		ids = append(ids, strconv.FormatUint(uint64(k), 10))
	}
	v.KeyIDs = strings.Join(ids, ", ")
	if v.KeyIDs == "" {
		v.KeyIDs = "none"
	}
	for _, t := range c.Destroyed.Tables {
		v.Tables = append(v.Tables, public.Row{Name: t.Name, Rows: strconv.FormatInt(t.Rows, 10)})
	}
	for _, t := range c.Destroyed.PlatformRows {
		v.Tables = append(v.Tables, public.Row{Name: "tenantry." + t.Name, Rows: strconv.FormatInt(t.Rows, 10)})
	}
	for _, e := range c.Destroyed.ExportArchives {
		v.Archives = append(v.Archives, e.File+" (sha256 "+e.SHA256+")")
	}
	for _, t := range c.Retained {
		v.Retained = append(v.Retained, public.Row{Name: t.Name, Rows: strconv.FormatInt(t.Rows, 10)})
	}
	return v
}
