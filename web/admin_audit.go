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
	"github.com/tenantry/tenantry/internal/tenant"
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
	_ = w.Write([]string{"id", "time", "tenant_id", "actor", "action", "target", "detail", "request_id", "source_addr", "prev_hash", "hash"})
	err := audit.Each(c.Request().Context(), s.db.App, q, func(e audit.Event) error {
		tenant := ""
		if e.TenantID != nil {
			tenant = strconv.FormatInt(*e.TenantID, 10)
		}
		return w.Write([]string{strconv.FormatInt(e.ID, 10), e.CreatedAt.UTC().Format(time.RFC3339Nano), tenant, e.Actor, e.Action,
			e.Target, string(e.Detail), e.RequestID, e.SourceAddr, hex.EncodeToString(e.PrevHash), hex.EncodeToString(e.Hash)})
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

// tenantTrail loads the newest events of the tenant's own chain and verifies the chain.
func (s *Server) tenantTrail(c echo.Context, t tenant.Tenant) (admin.TenantTrail, error) {
	tr := admin.TenantTrail{VerifyURL: "/admin/tenants/" + t.Slug + "/audit/verify", Chain: s.tenantChainStatus(c, t)}
	events, err := audit.ListTenant(c.Request().Context(), s.db, t.ID, 20)
	if err != nil {
		if isMissingPlane(err) { // purged or still provisioning: no schema, no chain
			return tr, nil
		}
		return tr, err
	}
	for _, e := range events {
		tr.Rows = append(tr.Rows, auditRow(audit.Event{ID: e.ID, Actor: e.Actor, Action: e.Action, Target: e.Target, Detail: e.Detail,
			RequestID: e.RequestID, SourceAddr: e.SourceAddr, CreatedAt: e.CreatedAt}))
	}
	return tr, nil
}

func (s *Server) tenantChainStatus(c echo.Context, t tenant.Tenant) admin.Chain {
	checked := time.Now().UTC().Format("15:04:05 MST")
	n, err := audit.VerifyTenant(c.Request().Context(), s.db, t.ID)
	switch {
	case errors.Is(err, audit.ErrChainBroken):
		return admin.Chain{OK: false, Message: "The tenant's chain is broken: " + err.Error() + ".", Checked: checked}
	case isMissingPlane(err):
		return admin.Chain{OK: true, Message: "This tenant has no schema, so no chain of its own.", Checked: checked}
	case err != nil:
		s.log.Error("verify tenant chain", "id", requestID(c), "tenant", t.ID, "err", err)
		return admin.Chain{OK: false, Message: "The chain could not be checked right now; try again.", Checked: checked}
	default:
		return admin.Chain{OK: true, Message: "Tenant chain verified: all " + strconv.Itoa(n) + " events are intact.", Checked: checked}
	}
}

// tenantAuditVerify re-checks the tenant's own chain (htmx).
func (s *Server) tenantAuditVerify(c echo.Context) error {
	t, err := s.tenants.Get(c.Request().Context(), c.Param("slug"))
	if err != nil {
		return err
	}
	return write(c, http.StatusOK, admin.ChainStatus(s.tenantChainStatus(c, t)))
}
