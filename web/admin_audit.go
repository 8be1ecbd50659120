package web

import (
	"encoding/csv"
	"encoding/hex"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/audit"
	"github.com/tenantry/tenantry/views/pages/admin"
)

// auditCSV exports every event matching the search (the whole platform trail, or one tenant's)
// as CSV, with each event's hash and its predecessor's so the chain can be re-checked offline.
func (s *Server) auditCSV(c echo.Context) error {
	q := audit.Query{Search: c.QueryParam("q")}
	name := "tenantry-audit"
	if slug := c.Param("slug"); slug != "" {
		t, err := s.tenants.Get(c.Request().Context(), slug)
		if err != nil {
			return err
		}
		q.TenantID, name = &t.ID, "tenantry-audit-"+t.Slug
	}
	h := c.Response().Header()
	h.Set(echo.HeaderContentType, "text/csv; charset=utf-8")
	h.Set(echo.HeaderContentDisposition, `attachment; filename="`+name+"-"+time.Now().UTC().Format("20060102-150405")+`.csv"`)
	c.Response().WriteHeader(http.StatusOK)
	w := csv.NewWriter(c.Response())
	_ = w.Write([]string{"id", "time", "tenant_id", "actor", "action", "target", "detail", "prev_hash", "hash"})
	err := audit.Each(c.Request().Context(), s.db.App, q, func(e audit.Event) error {
		tenant := ""
		if e.TenantID != nil {
			tenant = strconv.FormatInt(*e.TenantID, 10)
		}
		return w.Write([]string{strconv.FormatInt(e.ID, 10), e.CreatedAt.UTC().Format(time.RFC3339Nano), tenant, e.Actor, e.Action,
			e.Target, string(e.Detail), hex.EncodeToString(e.PrevHash), hex.EncodeToString(e.Hash)})
	})
	w.Flush()
	if err != nil { // the status line is gone; cut the file short and log
		s.log.Error("audit export failed", "id", requestID(c), "err", err)
		return nil
	}
	return w.Error()
}

// auditVerify re-checks the platform chain and answers with its status line (htmx).
func (s *Server) auditVerify(c echo.Context) error {
	return s.render(c, http.StatusOK, page{Title: "Audit trail", Nav: "audit", Content: admin.ChainStatus(s.chainStatus(c)), Fragment: admin.ChainStatus(s.chainStatus(c))})
}

// chainStatus verifies the whole platform chain and words the result for people.
func (s *Server) chainStatus(c echo.Context) admin.Chain {
	n, err := audit.Verify(c.Request().Context(), s.db.App)
	switch {
	case errors.Is(err, audit.ErrChainBroken):
		return admin.Chain{OK: false, Message: "The audit chain is broken: " + err.Error() + ". An event was altered or removed outside Tenantry.", Checked: time.Now().UTC().Format("15:04:05 MST")}
	case err != nil:
		s.log.Error("verify audit chain", "id", requestID(c), "err", err)
		return admin.Chain{OK: false, Message: "The chain could not be checked right now; try again.", Checked: time.Now().UTC().Format("15:04:05 MST")}
	default:
		return admin.Chain{OK: true, Message: "Hash chain verified: all " + strconv.Itoa(n) + " events are intact.", Checked: time.Now().UTC().Format("15:04:05 MST")}
	}
}
