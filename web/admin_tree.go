package web

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/tenantry/tenantry/internal/tenant"
	"github.com/tenantry/tenantry/internal/validation"
	"github.com/tenantry/tenantry/views/layouts"
	"github.com/tenantry/tenantry/views/pages/admin"
)

// treeLevelLimit bounds how many tenants one level of the tree shows.
const treeLevelLimit = 200

func treeNode(n tenant.Node) admin.TreeNode {
	return admin.TreeNode{ID: n.ID, Slug: n.Slug, Name: n.Name, State: n.State, Plan: n.PlanName, Children: n.Children}
}

// treePage is the tree browser: roots, or with a search only the branches that lead to the
// first hits, opened.
func (s *Server) treePage(c echo.Context) error {
	ctx := c.Request().Context()
	m := admin.TreePage{Search: strings.TrimSpace(c.QueryParam("q"))}
	var onPath, hits map[int64]bool
	if m.Search != "" {
		res, err := s.tenants.List(ctx, tenant.ListQuery{Search: m.Search, PerPage: 20})
		if err != nil {
			return err
		}
		m.Hits = int(res.Total)
		onPath, hits = map[int64]bool{}, map[int64]bool{}
		for _, it := range res.Items {
			hits[it.ID] = true
			for _, label := range strings.Split(it.Path, ".") {
				if id, err := strconv.ParseInt(label, 10, 64); err == nil {
					onPath[id] = true
				}
			}
		}
	}
	var level func(parent *int64) ([]admin.TreeNode, error)
	level = func(parent *int64) ([]admin.TreeNode, error) {
		nodes, err := s.tenants.Nodes(ctx, parent, treeLevelLimit)
		if err != nil {
			return nil, err
		}
		if len(nodes) == treeLevelLimit {
			m.Limited = true
		}
		var out []admin.TreeNode
		for _, n := range nodes {
			if onPath != nil && !onPath[n.ID] {
				continue
			}
			tn := treeNode(n)
			tn.Hit = hits[n.ID]
			// Open the branch when it leads to a hit below this node.
			if onPath != nil && !tn.Hit && n.Children > 0 {
				id := n.ID
				if tn.Kids, err = level(&id); err != nil {
					return nil, err
				}
				tn.Expanded = true
			}
			out = append(out, tn)
		}
		return out, nil
	}
	var err error
	if m.Search == "" || m.Hits > 0 {
		if m.Roots, err = level(nil); err != nil {
			return err
		}
	}
	return s.render(c, http.StatusOK, page{Title: "Tenant tree", Nav: "tenants",
		Crumbs: []layouts.Crumb{tenantsCrumb, {Label: "Tree"}}, Content: admin.TreeBrowser(m)})
}

// treeChildren answers an expand click with the node's children.
func (s *Server) treeChildren(c echo.Context) error {
	id, err := strconv.ParseInt(c.Param("id"), 10, 64)
	if err != nil {
		return echo.ErrNotFound
	}
	nodes, err := s.tenants.Nodes(c.Request().Context(), &id, treeLevelLimit)
	if err != nil {
		return err
	}
	kids := make([]admin.TreeNode, len(nodes))
	for i, n := range nodes {
		kids[i] = treeNode(n)
	}
	return write(c, http.StatusOK, admin.TreeKids(id, kids))
}

// tenantMoveForm shows the move form of a tenant.
func (s *Server) tenantMoveForm(c echo.Context) error {
	if u, _ := currentUser(c); !u.CanWrite() {
		return errReadOnly
	}
	t, err := s.tenants.Get(c.Request().Context(), c.Param("slug"))
	if err != nil {
		return err
	}
	return s.renderMove(c, http.StatusOK, t, admin.MoveForm{})
}

func (s *Server) renderMove(c echo.Context, status int, t tenant.Tenant, m admin.MoveForm) error {
	ctx := c.Request().Context()
	m.CSRF, m.Slug, m.Name = csrfToken(c), t.Slug, t.Name
	if t.ParentID != nil {
		if as, err := s.tenants.Ancestors(ctx, t); err == nil && len(as) > 0 {
			m.Parent = as[len(as)-1].Slug
		}
	}
	return s.render(c, status, page{Title: "Move " + t.Name, Nav: "tenants",
		Crumbs: []layouts.Crumb{tenantsCrumb, {Label: t.Name, Href: "/admin/tenants/" + t.Slug}, {Label: "Move"}}, Content: admin.MovePage(m)})
}

// tenantMove previews a move, or, confirmed, makes it.
func (s *Server) tenantMove(c echo.Context) error {
	ctx := c.Request().Context()
	t, err := s.tenants.Get(ctx, c.Param("slug"))
	if err != nil {
		return err
	}
	u, _ := currentUser(c)
	newParent := c.FormValue("parent")
	var plan tenant.MovePlan
	if c.FormValue("confirm") == "yes" {
		plan, err = s.tenants.Move(ctx, u.Email, t.Slug, newParent)
	} else {
		plan, err = s.tenants.PlanMove(ctx, t.Slug, newParent)
	}
	if errors.Is(err, validation.ErrInvalid) {
		return s.renderMove(c, http.StatusUnprocessableEntity, t, admin.MoveForm{NewParent: newParent, Error: validation.Fields(err)["parent"]})
	}
	if err != nil {
		return err
	}
	if c.FormValue("confirm") != "yes" {
		pv := &admin.MovePreview{Descendants: plan.Descendants}
		if plan.From != nil {
			pv.From = plan.From.Name
		}
		if plan.To != nil {
			pv.To = plan.To.Name
		}
		return s.renderMove(c, http.StatusOK, t, admin.MoveForm{NewParent: newParent, Preview: pv})
	}
	s.flash(c, "success", t.Name+" moved, with "+strconv.FormatInt(plan.Descendants, 10)+" descendant tenant(s).")
	return redirect(c, "/admin/tenants/"+t.Slug)
}
