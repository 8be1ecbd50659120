package web

import (
	"errors"
	"io"
	"maps"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"gorm.io/gorm"

	"github.com/tenantry/tenantry/internal/quota"
	"github.com/tenantry/tenantry/internal/settings"
	"github.com/tenantry/tenantry/internal/templates"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/components"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/admin"
)

var templatesCrumb = layouts.Crumb{Label: "Templates", Href: "/admin/templates"}

// templateRoutes adds the provisioning templates' pages, the tenant page's Template section and
// the public address of uploaded images (logos appear on signup pages and e-mails).
func (s *Server) templateRoutes(g *echo.Group) {
	g.GET("/templates", s.templateList)
	g.GET("/templates/new", s.templateNew)
	limit := middleware.BodyLimit("2M") // a form with a logo (≤ 256 KB) is far below; refuse floods early
	g.POST("/templates", s.templateCreate, limit)
	g.POST("/templates/preview", s.templatePreview, limit)
	g.GET("/templates/:id", s.templateShow)
	g.GET("/templates/:id/edit", s.templateEdit)
	g.POST("/templates/:id", s.templateSave, limit)
	g.GET("/templates/:id/clone", s.templateCloneForm)
	g.POST("/templates/:id/clone", s.templateClone)
	g.POST("/templates/:id/archive", func(c echo.Context) error { return s.templateArchive(c, true) })
	g.POST("/templates/:id/restore", func(c echo.Context) error { return s.templateArchive(c, false) })
	g.GET("/tenants/:slug/template", s.tenantTemplate)
	g.POST("/tenants/:slug/template/upgrade", s.tenantTemplateUpgrade)
	s.echo.GET("/media/images/:id", s.mediaImage)
}

func (s *Server) templatesSvc() *templates.Service { return templates.NewService(s.db) }

func (s *Server) templateByParam(c echo.Context) (templates.Template, error) {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return templates.Template{}, echo.ErrNotFound
	}
	t, err := s.templatesSvc().Get(c.Request().Context(), id)
	if errors.Is(err, templates.ErrNotFound) {
		return t, echo.ErrNotFound
	}
	return t, err
}

// templateList lists templates; htmx requests get only the results.
func (s *Server) templateList(c echo.Context) error {
	pageNo, _ := strconv.Atoi(c.QueryParam("page"))
	res, err := s.templatesSvc().List(c.Request().Context(), templates.ListQuery{Search: c.QueryParam("q"), Status: c.QueryParam("status"), Page: pageNo})
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	m := admin.TemplateList{Query: admin.TemplateQuery{Search: res.Query.Search, Status: res.Query.Status, Page: res.Query.Page},
		Total: res.Total, Pages: res.Pages(), CanWrite: u.CanWrite()}
	for _, t := range res.Items {
		r := admin.TemplateRow{ID: t.ID, Slug: t.Slug, Name: t.Name, Plan: t.Latest.PlanKey, Version: t.Latest.Number,
			Tenants: t.Tenants, Archived: t.Archived(), Updated: t.UpdatedAt.Format(dateFormat)}
		if t.Latest.Compliance != templates.ComplianceNone {
			r.Compliance = templates.ComplianceLabel(t.Latest.Compliance)
		}
		m.Rows = append(m.Rows, r)
	}
	if isFragmentRequest(c) {
		c.Response().Header().Set("HX-Push-Url", m.Query.URL())
	}
	return s.render(c, http.StatusOK, page{Title: "Templates", Nav: "templates", Crumbs: []layouts.Crumb{{Label: "Templates"}},
		Content: admin.TemplateListPage(m), Fragment: admin.TemplateResults(m)})
}

// templateNew shows an empty form with sensible choices.
func (s *Server) templateNew(c echo.Context) error {
	if u, _ := currentUser(c); !u.CanWrite() {
		return errReadOnly
	}
	in := templates.Input{TenantType: "company", Industry: "general", Compliance: templates.ComplianceNone, PlanKey: "starter", SeedDataset: "empty"}
	return s.renderTemplateForm(c, http.StatusOK, "new", 0, in, nil)
}

// templateEdit shows the form filled with the latest version.
func (s *Server) templateEdit(c echo.Context) error {
	if u, _ := currentUser(c); !u.CanWrite() {
		return errReadOnly
	}
	t, err := s.templateByParam(c)
	if err != nil {
		return err
	}
	return s.renderTemplateForm(c, http.StatusOK, "edit", t.ID, templates.InputOf(t, t.Latest), nil)
}

// readTemplateForm turns the submitted form into an Input; numbers that do not parse come back
// as field errors (the other fields are still checked by the service).
func (s *Server) readTemplateForm(c echo.Context) (templates.Input, validation.Errors, error) {
	errs := validation.Errors{}
	in := templates.Input{Name: c.FormValue("name"), Slug: c.FormValue("slug"), TenantType: c.FormValue("tenant_type"),
		Industry: c.FormValue("industry"), Compliance: c.FormValue("compliance"), PlanKey: c.FormValue("plan"),
		SeedDataset: c.FormValue("seed_dataset"), Note: c.FormValue("note"), Quotas: map[string]templates.QuotaLimit{}, Settings: map[string]string{}}
	dims, err := quota.NewService(s.db).Dimensions(c.Request().Context())
	if err != nil {
		return in, nil, err
	}
	for _, d := range dims {
		f := templates.QuotaField(d.Key)
		soft, hard := strings.TrimSpace(c.FormValue(f+".soft")), strings.TrimSpace(c.FormValue(f+".hard"))
		if soft == "" && hard == "" {
			continue
		}
		sn, err1 := strconv.ParseInt(strings.ReplaceAll(soft, ",", ""), 10, 64)
		hn, err2 := strconv.ParseInt(strings.ReplaceAll(hard, ",", ""), 10, 64)
		if err1 != nil || err2 != nil {
			errs.Add(f, "Enter whole numbers for both limits, or leave both empty for the plan's default.")
			continue
		}
		in.Quotas[d.Key] = templates.QuotaLimit{Soft: sn, Hard: hn}
	}
	for _, k := range settings.Catalogue {
		if k.Type == settings.Secret {
			continue
		}
		if v := c.FormValue(templates.SettingField(k.Key)); v != "" {
			in.Settings[k.Key] = v
		}
	}
	if c.FormValue("logo_remove") == "true" {
		delete(in.Settings, "branding.logo")
	}
	if fh, err := c.FormFile("logo"); err == nil && fh.Size > 0 {
		f, err := fh.Open()
		if err != nil {
			return in, nil, err
		}
		defer f.Close()
		data, err := io.ReadAll(io.LimitReader(f, settings.MaxImageBytes+1))
		if err != nil {
			return in, nil, err
		}
		in.Logo = data
	}
	return in, errs, nil
}

// templateCreate stores a new template, or re-renders the form with every field error.
func (s *Server) templateCreate(c echo.Context) error {
	return s.saveTemplate(c, 0)
}

// templateSave stores an edit as a new version.
func (s *Server) templateSave(c echo.Context) error {
	t, err := s.templateByParam(c)
	if err != nil {
		return err
	}
	return s.saveTemplate(c, t.ID)
}

func (s *Server) saveTemplate(c echo.Context, id int64) error {
	ctx := c.Request().Context()
	u, _ := currentUser(c)
	mode := "new"
	if id != 0 {
		mode = "edit"
	}
	in, errs, err := s.readTemplateForm(c)
	if err != nil {
		return err
	}
	svc := s.templatesSvc()
	if len(errs) > 0 {
		checkErr := svc.Check(ctx, id, in)
		if checkErr != nil && !errors.Is(checkErr, validation.ErrInvalid) {
			return checkErr
		}
		all := maps.Clone(validation.Fields(checkErr))
		if all == nil {
			all = validation.Errors{}
		}
		maps.Copy(all, errs)
		return s.renderTemplateForm(c, http.StatusUnprocessableEntity, mode, id, in, all)
	}
	if id == 0 {
		t, err := svc.Create(ctx, u.Email, in)
		if errors.Is(err, validation.ErrInvalid) {
			return s.renderTemplateForm(c, http.StatusUnprocessableEntity, mode, id, in, validation.Fields(err))
		}
		if err != nil {
			return err
		}
		s.flash(c, "success", "Template "+t.Name+" created (version 1).")
		return redirect(c, "/admin/templates/"+strconv.FormatInt(t.ID, 10))
	}
	before, err := svc.Latest(ctx, id)
	if err != nil {
		return err
	}
	v, err := svc.Edit(ctx, u.Email, id, in)
	if errors.Is(err, validation.ErrInvalid) {
		return s.renderTemplateForm(c, http.StatusUnprocessableEntity, mode, id, in, validation.Fields(err))
	}
	if err != nil {
		return err
	}
	if v.ID == before.ID {
		s.flash(c, "info", "Nothing changed: no new version was made.")
	} else {
		s.flash(c, "success", "Saved as version "+strconv.Itoa(v.Number)+" of "+v.Name+".")
	}
	return redirect(c, "/admin/templates/"+strconv.FormatInt(id, 10))
}

// templatePreview re-renders the form for another compliance profile, keeping the input.
func (s *Server) templatePreview(c echo.Context) error {
	id, _ := strconv.ParseInt(c.QueryParam("id"), 10, 64)
	mode := "new"
	if id != 0 {
		mode = "edit"
	}
	in, _, err := s.readTemplateForm(c)
	if err != nil {
		return err
	}
	in.Logo = nil
	return s.renderTemplateForm(c, http.StatusOK, mode, id, in, nil)
}

func options(opts []templates.Option) []components.Option {
	out := make([]components.Option, len(opts))
	for i, o := range opts {
		out[i] = components.Option{Value: o.Value, Label: o.Label}
	}
	return out
}

func (s *Server) renderTemplateForm(c echo.Context, status int, mode string, id int64, in templates.Input, errs validation.Errors) error {
	ctx := c.Request().Context()
	plans, err := s.planOptions(c)
	if err != nil {
		return err
	}
	m := admin.TemplateForm{Mode: mode, CSRF: csrfToken(c), Name: in.Name, Slug: in.Slug, TenantType: in.TenantType, Industry: in.Industry,
		Compliance: in.Compliance, Plan: in.PlanKey, SeedDataset: in.SeedDataset, Note: in.Note, Errors: errs,
		TenantTypes: options(templates.TenantTypes), Industries: options(templates.Industries), Profiles: options(templates.ComplianceProfiles),
		Plans: plans, Datasets: options(templates.SeedDatasets), Action: "/admin/templates", PreviewURL: "/admin/templates/preview",
		Heading: "New template", CancelURL: "/admin/templates"}
	crumbs := []layouts.Crumb{templatesCrumb, {Label: "New template"}}
	if mode == "edit" {
		ids := strconv.FormatInt(id, 10)
		m.Action, m.PreviewURL, m.CancelURL = "/admin/templates/"+ids, "/admin/templates/preview?id="+ids, "/admin/templates/"+ids
		m.Heading = "Edit " + in.Name
		crumbs = []layouts.Crumb{templatesCrumb, {Label: in.Name, Href: "/admin/templates/" + ids}, {Label: "Edit"}}
	}
	if m.Errors == nil {
		m.Errors = map[string]string{}
	}
	if msg := m.Errors[templates.SettingField("branding.logo")]; msg != "" && m.Errors[templates.FieldLogo] == "" {
		m.Errors[templates.FieldLogo] = msg // the logo's value travels in a hidden field: show it at the upload
	}
	if id := in.Settings["branding.logo"]; id != "" {
		m.LogoID, m.LogoURL = id, settings.ImageURL(id)
	}
	// Quota rows with the chosen plan's defaults.
	dims, err := quota.NewService(s.db).Dimensions(ctx)
	if err != nil {
		return err
	}
	var defaults []struct {
		Dimension string
		SoftLimit int64
		HardLimit int64
	}
	if err := s.db.App.WithContext(ctx).Raw("SELECT dimension, soft_limit, hard_limit FROM tenantry.plan_quota_defaults WHERE plan_key = ?", in.PlanKey).Scan(&defaults).Error; err != nil {
		return err
	}
	for _, d := range dims {
		r := admin.TemplateQuotaRow{Key: d.Key, Name: d.Name, Unit: d.Unit, PlanDefault: "none", Error: m.Errors[templates.QuotaField(d.Key)]}
		for _, p := range defaults {
			if p.Dimension == d.Key {
				r.PlanDefault = formatInt(p.SoftLimit) + " / " + formatInt(p.HardLimit)
			}
		}
		if q, ok := in.Quotas[d.Key]; ok {
			r.Soft, r.Hard = strconv.FormatInt(q.Soft, 10), strconv.FormatInt(q.Hard, 10)
		} else if r.Error != "" {
			r.Soft, r.Hard = c.FormValue(templates.QuotaField(d.Key)+".soft"), c.FormValue(templates.QuotaField(d.Key)+".hard")
		}
		m.Quotas = append(m.Quotas, r)
	}
	for _, r := range templates.Requirements[in.Compliance] {
		m.ComplianceNote = append(m.ComplianceNote, r.Reason)
	}
	// Settings by group: every catalogue key but secrets (set per tenant) and the logo (its own field).
	for _, k := range settings.Catalogue {
		if k.Type == settings.Secret || k.Type == settings.Image {
			continue
		}
		f := templates.SettingField(k.Key)
		row := admin.TemplateSettingRow{Key: k.Key, Field: f, Label: k.Label, Description: k.Description, Type: string(k.Type),
			Value: in.Settings[k.Key], Default: k.Default, Error: m.Errors[f]}
		switch k.Type {
		case settings.Bool:
			def := "off"
			if k.Default == "true" {
				def = "on"
			}
			row.Options = []components.Option{{Value: "", Label: "Inherit (default " + def + ")"}, {Value: "true", Label: "On"}, {Value: "false", Label: "Off"}}
			switch strings.ToLower(row.Value) {
			case "on", "yes", "1", "true":
				row.Value = "true"
			case "off", "no", "0", "false":
				row.Value = "false"
			}
		case settings.Enum:
			row.Options = []components.Option{{Value: "", Label: "Inherit (default " + k.Default + ")"}}
			for _, o := range k.Options {
				row.Options = append(row.Options, components.Option{Value: o, Label: o})
			}
		}
		if r, ok := templates.RequirementFor(in.Compliance, k.Key); ok {
			row.LockReason = r.Reason
			if r.Op == templates.Equal {
				row.Fixed, row.Value = true, r.Value
			} else {
				row.Rule = r.Describe()
				if row.Value == "" {
					row.Value = r.Value
				}
			}
		}
		if n := len(m.Groups); n == 0 || m.Groups[n-1].Name != k.Group {
			m.Groups = append(m.Groups, admin.TemplateSettingGroup{Name: k.Group})
		}
		g := &m.Groups[len(m.Groups)-1]
		g.Rows = append(g.Rows, row)
	}
	title := m.Heading
	if isFragmentRequest(c) {
		return write(c, status, admin.TemplateFormBody(m))
	}
	return s.render(c, status, page{Title: title, Nav: "templates", Crumbs: crumbs, Content: admin.TemplateFormPage(m)})
}

func formatInt(n int64) string {
	s := strconv.FormatInt(n, 10)
	var b strings.Builder
	for i, r := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func settingDisplay(key, v string) string {
	k, _ := settings.Lookup(key)
	if k.Type == settings.Bool {
		if v == "true" {
			return "on"
		}
		return "off"
	}
	if v == "" {
		return "—"
	}
	return v
}

func (s *Server) versionView(v templates.Version, latest bool, dimName map[string]string) admin.TemplateVersionView {
	out := admin.TemplateVersionView{ID: v.ID, Number: v.Number, Label: v.Label(), Created: v.CreatedAt.Format(dateFormat + " 15:04 MST"),
		CreatedBy: v.CreatedBy, Note: v.Note, Plan: v.PlanKey, Latest: latest, LogoURL: settings.ImageURL(v.Settings["branding.logo"])}
	if v.Compliance != templates.ComplianceNone {
		out.Compliance = templates.ComplianceLabel(v.Compliance)
	}
	lbl := func(opts []templates.Option, val string) string {
		for _, o := range opts {
			if o.Value == val {
				return o.Label
			}
		}
		return val
	}
	out.Fields = []admin.TemplateField{
		{Label: "Tenant type", Value: lbl(templates.TenantTypes, v.TenantType)},
		{Label: "Industry", Value: lbl(templates.Industries, v.Industry)},
		{Label: "Compliance profile", Value: templates.ComplianceLabel(v.Compliance)},
		{Label: "Default plan", Value: v.PlanKey},
		{Label: "Seed dataset", Value: lbl(templates.SeedDatasets, v.SeedDataset)},
	}
	for dim, q := range v.Quotas {
		name := dimName[dim]
		if name == "" {
			name = dim
		}
		out.Quotas = append(out.Quotas, admin.TemplateField{Label: name, Value: "soft " + formatInt(q.Soft) + " · hard " + formatInt(q.Hard)})
	}
	for _, k := range settings.Catalogue {
		val, ok := v.Settings[k.Key]
		if !ok || k.Type == settings.Image {
			continue
		}
		out.Settings = append(out.Settings, admin.TemplateField{Label: k.Label, Value: settingDisplay(k.Key, val), Locked: v.Locks[k.Key]})
	}
	return out
}

// templateShow shows the latest version and the version history.
func (s *Server) templateShow(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.templateByParam(c)
	if err != nil {
		return err
	}
	vs, err := s.templatesSvc().Versions(ctx, t.ID)
	if err != nil {
		return err
	}
	dims, err := quota.NewService(s.db).Dimensions(ctx)
	if err != nil {
		return err
	}
	dimName := map[string]string{}
	for _, d := range dims {
		dimName[d.Key] = d.Name
	}
	u, _ := currentUser(c)
	m := admin.TemplateShow{ID: t.ID, Slug: t.Slug, Name: t.Name, Archived: t.Archived(), Tenants: t.Tenants, CSRF: csrfToken(c),
		CanWrite: u.CanWrite(), Latest: s.versionView(t.Latest, true, dimName)}
	for i, v := range vs {
		m.History = append(m.History, s.versionView(v, i == 0, dimName))
	}
	return s.render(c, http.StatusOK, page{Title: t.Name, Nav: "templates", Crumbs: []layouts.Crumb{templatesCrumb, {Label: t.Name}},
		Content: admin.TemplateShowPage(m)})
}

// templateCloneForm asks for the clone's name.
func (s *Server) templateCloneForm(c echo.Context) error {
	if u, _ := currentUser(c); !u.CanWrite() {
		return errReadOnly
	}
	t, err := s.templateByParam(c)
	if err != nil {
		return err
	}
	return s.renderCloneForm(c, http.StatusOK, admin.TemplateCloneForm{ID: t.ID, From: t.Name, Name: "Copy of " + t.Name}, t)
}

func (s *Server) renderCloneForm(c echo.Context, status int, m admin.TemplateCloneForm, t templates.Template) error {
	m.CSRF = csrfToken(c)
	return s.render(c, status, page{Title: "Clone " + t.Name, Nav: "templates",
		Crumbs:  []layouts.Crumb{templatesCrumb, {Label: t.Name, Href: "/admin/templates/" + strconv.FormatInt(t.ID, 10)}, {Label: "Clone"}},
		Content: admin.TemplateClonePage(m)})
}

// templateClone makes the clone, or shows the form again with field errors.
func (s *Server) templateClone(c echo.Context) error {
	t, err := s.templateByParam(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	name, slug := c.FormValue("name"), c.FormValue("slug")
	cl, err := s.templatesSvc().Clone(c.Request().Context(), u.Email, t.ID, name, slug)
	if errors.Is(err, validation.ErrInvalid) {
		return s.renderCloneForm(c, http.StatusUnprocessableEntity, admin.TemplateCloneForm{ID: t.ID, From: t.Name, Name: name, Slug: slug, Errors: validation.Fields(err)}, t)
	}
	if err != nil {
		return err
	}
	s.flash(c, "success", "Template "+cl.Name+" created as a clone of "+t.Name+".")
	return redirect(c, "/admin/templates/"+strconv.FormatInt(cl.ID, 10))
}

// templateArchive archives or restores a template.
func (s *Server) templateArchive(c echo.Context, archived bool) error {
	t, err := s.templateByParam(c)
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	if _, err := s.templatesSvc().Archive(c.Request().Context(), u.Email, t.ID, archived); err != nil {
		return err
	}
	if archived {
		s.flash(c, "success", "Template "+t.Name+" archived: it is no longer offered for new tenants. Tenants made from it keep their version.")
	} else {
		s.flash(c, "success", "Template "+t.Name+" restored: it is offered for new tenants again.")
	}
	return redirect(c, "/admin/templates/"+strconv.FormatInt(t.ID, 10))
}

// tenantTemplate is the tenant page's Template section (loaded into the Overview by htmx).
func (s *Server) tenantTemplate(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.tenants.Get(ctx, c.Param("slug"))
	if err != nil {
		return err
	}
	if !isFragmentRequest(c) {
		return redirect(c, "/admin/tenants/"+t.Slug)
	}
	m, err := s.tenantTemplatePanel(c, t.ID)
	if err != nil {
		return err
	}
	m.Slug = t.Slug
	return write(c, http.StatusOK, admin.TenantTemplateSection(m))
}

// tenantTemplateUpgrade applies the template's latest version to a tenant made from an older
// one: its plan, quota limits and template settings follow the latest version (audited).
func (s *Server) tenantTemplateUpgrade(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.tenants.Get(ctx, c.Param("slug"))
	if err != nil {
		return err
	}
	svc := s.templatesSvc()
	d, err := svc.Drift(ctx, t.ID)
	if err != nil {
		return err
	}
	if d.Template == nil || !d.Behind {
		s.flash(c, "info", "Nothing to upgrade: the tenant is not behind its template.")
		return redirect(c, "/admin/tenants/"+t.Slug)
	}
	if strconv.FormatInt(d.Latest.ID, 10) != c.FormValue("version") {
		s.flash(c, "error", "The template changed since the page was shown; review the new version and try again.")
		return redirect(c, "/admin/tenants/"+t.Slug)
	}
	u, _ := currentUser(c)
	if err := s.db.App.WithContext(ctx).Transaction(func(tx *gorm.DB) error { return svc.Apply(tx, t.ID, d.Latest, u.Email) }); err != nil {
		return err
	}
	s.flash(c, "success", t.Name+" now follows "+d.Latest.Label()+".")
	return redirect(c, "/admin/tenants/"+t.Slug)
}

func (s *Server) tenantTemplatePanel(c echo.Context, tenantID int64) (admin.TenantTemplatePanel, error) {
	d, err := s.templatesSvc().Drift(c.Request().Context(), tenantID)
	if err != nil || d.Template == nil {
		return admin.TenantTemplatePanel{}, err
	}
	me, _ := currentUser(c)
	m := admin.TenantTemplatePanel{Made: true, CanWrite: me.CanWrite(), CSRF: csrfToken(c), Template: d.Template.Name, TemplateID: d.Template.ID, From: d.From.Label(),
		Latest: d.Latest.Label(), LatestID: d.Latest.ID, Behind: d.Behind, InSync: d.InSync(), Archived: d.Template.Archived()}
	for _, ch := range d.Upgrades {
		m.Upgrades = append(m.Upgrades, admin.TemplateChange{Label: ch.Label, From: changeValue(ch.Field, ch.From), To: changeValue(ch.Field, ch.To)})
	}
	for _, ch := range d.Overrides {
		m.Overrides = append(m.Overrides, admin.TemplateChange{Label: ch.Label, From: changeValue(ch.Field, ch.From), To: changeValue(ch.Field, ch.To), Source: ch.Source})
	}
	return m, nil
}

func changeValue(field, v string) string {
	if key, ok := strings.CutPrefix(field, "setting."); ok && !strings.HasPrefix(v, "(") {
		if key == "branding.logo" {
			if v == "" {
				return "none"
			}
			return "image " + v[:min(8, len(v))]
		}
		return settingDisplay(key, v)
	}
	return v
}

// mediaImage serves an uploaded image by its content hash: public, immutable.
func (s *Server) mediaImage(c echo.Context) error {
	img, err := settings.LoadImage(c.Request().Context(), s.db.App, c.Param("id"))
	if errors.Is(err, settings.ErrImageNotFound) {
		return echo.ErrNotFound
	}
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Cache-Control", "public, max-age=31536000, immutable")
	h.Set("Content-Security-Policy", "default-src 'none'")
	return c.Blob(http.StatusOK, img.ContentType, img.Data)
}

// storeUploadedImage reads the multipart file field and stores it as an image, returning its
// id. A missing, non-image or oversized file is a validation error keyed field.
func (s *Server) storeUploadedImage(c echo.Context, actor, field string) (string, error) {
	fh, err := c.FormFile(field)
	if err != nil {
		return "", validation.Errors{field: "Choose a PNG or JPEG file to upload."}
	}
	f, err := fh.Open()
	if err != nil {
		return "", err
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, settings.MaxImageBytes+1))
	if err != nil {
		return "", err
	}
	var id string
	err = s.db.App.WithContext(c.Request().Context()).Transaction(func(tx *gorm.DB) error {
		id, err = settings.StoreImage(tx, actor, field, data)
		return err
	})
	return id, err
}
