package api

import (
	"context"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05Z") }

func renderSecurityGroup(g *neutron.SecurityGroup, fields []string) object {
	rules := make([]object, len(g.Rules))
	for i := range g.Rules {
		rules[i] = renderEmbeddedRule(&g.Rules[i])
	}
	return object{
		{"id", g.ID}, {"name", g.Name}, {"stateful", g.Stateful}, {"tenant_id", g.ProjectID},
		{"description", g.Description}, {"shared", g.Shared}, {"security_group_rules", rules},
		{"tags", g.Tags}, {"created_at", fmtTime(g.CreatedAt)}, {"updated_at", fmtTime(g.UpdatedAt)},
		{"revision_number", g.RevisionNumber}, {"project_id", g.ProjectID},
	}.only(fields)
}

// visibleGroup reports whether the caller may see group g (loaded with
// GetSecurityGroupFor): admins see all groups, members their project's and
// those shared with them through RBAC.
func visibleGroup(ctx *neutron.Context, g *neutron.SecurityGroup) bool {
	return ctx.IsAdmin || g.ProjectID == ctx.ProjectID || g.Shared
}

// ownsGroup reports whether the caller may change g: a project a group is
// only shared with may use it, not change it.
func ownsGroup(ctx *neutron.Context, g *neutron.SecurityGroup) bool {
	return ctx.IsAdmin || g.ProjectID == ctx.ProjectID
}

// usableGroup reports whether project may use group g (nil when there is
// no such group) for a port or as a rule's group or remote group: its own
// group, one shared with it, or any group when an admin asks.
func usableGroup(ctx context.Context, tx *store.Tx, nctx *neutron.Context, g *neutron.SecurityGroup, project string) (bool, error) {
	if g == nil {
		return false, nil
	}
	if nctx.IsAdmin || g.ProjectID == project {
		return true, nil
	}
	return tx.SecurityGroupSharedWith(ctx, g.ID, project)
}

// getVisibleGroup loads a group the caller may see, or answers as Neutron
// does for a missing or foreign one: SecurityGroupNotFound.
func getVisibleGroup(ctx context.Context, tx *store.Tx, nctx *neutron.Context, id string) (*neutron.SecurityGroup, error) {
	g, err := tx.GetSecurityGroupFor(ctx, id, nctx.ProjectID)
	if err != nil {
		return nil, err
	}
	if g == nil || !visibleGroup(nctx, g) {
		return nil, neutron.SecurityGroupNotFound(id)
	}
	return g, nil
}

// readWithDefaultGroup runs read in a read transaction once project's
// default group exists: Neutron creates it on first use, on list as on
// create (a member cannot trigger it for another project; "" is no
// project). The check shares read's transaction; only when the group is
// missing does it take a write transaction and a second read one.
func (s *Server) readWithDefaultGroup(ctx context.Context, nctx *neutron.Context, project string, read func(*store.Tx) error) error {
	if project != "" && project != nctx.ProjectID && !nctx.IsAdmin {
		project = ""
	}
	missing := false
	err := s.store.Read(ctx, func(tx *store.Tx) error {
		if project != "" {
			id, err := tx.DefaultSecurityGroupID(ctx, project)
			if err != nil {
				return err
			}
			if missing = id == ""; missing {
				return nil
			}
		}
		return read(tx)
	})
	if err != nil || !missing {
		return err
	}
	if err := s.store.Write(ctx, func(tx *store.Tx) error { return s.ensureDefaultGroupTx(ctx, tx, nctx, project) }); err != nil {
		return err
	}
	return s.store.Read(ctx, read)
}

func (s *Server) ensureDefaultGroupTx(ctx context.Context, tx *store.Tx, nctx *neutron.Context, project string) error {
	if project == "" || (project != nctx.ProjectID && !nctx.IsAdmin) {
		return nil
	}
	id, err := tx.DefaultSecurityGroupID(ctx, project)
	if err != nil || id != "" {
		return err
	}
	// Neutron checks only the rule quota for the default group's 4 rules.
	if err := s.checkQuota(ctx, tx, project, "security_group_rule", 4); err != nil {
		return err
	}
	g := &neutron.SecurityGroup{
		ID: uuid.NewString(), ProjectID: project, Name: neutron.DefaultSecurityGroupName,
		Description: neutron.DefaultSecurityGroupDescription, Stateful: true,
	}
	return tx.CreateSecurityGroup(ctx, g, neutron.DefaultRules(g.ID, project, true), true)
}

func filterProject(f neutron.Filters) string {
	for _, k := range []string{"project_id", "tenant_id"} {
		if v, ok := f[k]; ok && len(v) > 0 {
			return neutron.PyStr(v[0])
		}
	}
	return ""
}

func (s *Server) listSecurityGroups(w http.ResponseWriter, r *request) error {
	p, err := parseList(r, neutron.SecurityGroupResource)
	if err != nil {
		return err
	}
	project := ""
	if r.ctx.ProjectID != "" {
		if project = filterProject(p.query.Filters); project == "" {
			project = r.ctx.ProjectID
		}
	}
	var groups []neutron.SecurityGroup
	err = s.readWithDefaultGroup(r.Context(), r.ctx, project, func(tx *store.Tx) error {
		var err error
		if groups, err = tx.ListSecurityGroups(r.Context(), p.query); err != nil {
			return err
		}
		if wants(p.fields, "security_group_rules") {
			return tx.LoadRules(r.Context(), groups)
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeList(w, r, p, "security_groups", groups,
		func(g *neutron.SecurityGroup) string { return g.ID },
		func(g *neutron.SecurityGroup) object { return renderSecurityGroup(g, p.fields) })
	return nil
}

func (s *Server) showSecurityGroup(w http.ResponseWriter, r *request) error {
	fields := fieldsParam(r)
	var g *neutron.SecurityGroup
	err := s.store.Read(r.Context(), func(tx *store.Tx) error {
		var err error
		if g, err = getVisibleGroup(r.Context(), tx, r.ctx, r.segs[1]); err != nil {
			return err
		}
		if wants(fields, "security_group_rules") {
			groups := []neutron.SecurityGroup{*g}
			if err := tx.LoadRules(r.Context(), groups); err != nil {
				return err
			}
			g = &groups[0]
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"security_group", renderSecurityGroup(g, fields)}})
	return nil
}

func (s *Server) createSecurityGroups(w http.ResponseWriter, r *request) error {
	items, bulk, err := neutron.SecurityGroupResource.PrepareBody(r.ctx, r.body, true, true)
	if err != nil {
		return err
	}
	created := make([]neutron.SecurityGroup, 0, len(items))
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		// The API's quota check comes first, for the whole request.
		if err := s.checkQuotaItems(r.Context(), tx, items, "security_group"); err != nil {
			return err
		}
		for _, it := range items {
			g := &neutron.SecurityGroup{
				ID:          uuid.NewString(),
				ProjectID:   it["project_id"].(string),
				Name:        it["name"].(string),
				Description: it["description"].(string),
				Stateful:    it["stateful"].(bool),
			}
			if err := s.ensureDefaultGroupTx(r.Context(), tx, r.ctx, g.ProjectID); err != nil {
				return err
			}
			if err := s.checkQuota(r.Context(), tx, g.ProjectID, "security_group_rule", 2); err != nil {
				return err
			}
			if err := tx.CreateSecurityGroup(r.Context(), g, neutron.DefaultRules(g.ID, g.ProjectID, false), false); err != nil {
				return err
			}
			created = append(created, *g)
		}
		return nil
	})
	if err != nil {
		return err
	}
	if bulk {
		out := make([]object, len(created))
		for i := range created {
			out[i] = renderSecurityGroup(&created[i], nil)
		}
		writeJSON(w, http.StatusCreated, object{{"security_groups", out}})
		return nil
	}
	writeJSON(w, http.StatusCreated, object{{"security_group", renderSecurityGroup(&created[0], nil)}})
	return nil
}

func (s *Server) updateSecurityGroup(w http.ResponseWriter, r *request) error {
	items, _, err := neutron.SecurityGroupResource.PrepareBody(r.ctx, r.body, false, false)
	if err != nil {
		return err
	}
	ifMatch, err := revisionConstraint(r)
	if err != nil {
		return err
	}
	in := items[0]
	var g *neutron.SecurityGroup
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		var err error
		if g, err = getVisibleGroup(r.Context(), tx, r.ctx, r.segs[1]); err != nil {
			return err
		}
		if !ownsGroup(r.ctx, g) {
			return policyDenied("rule:update_security_group")
		}
		if st, ok := in["stateful"].(bool); ok && st != g.Stateful {
			inUse, err := tx.SecurityGroupInUse(r.Context(), g.ID)
			if err != nil {
				return err
			}
			if inUse {
				return neutron.SecurityGroupInUse(g.ID)
			}
		}
		if _, ok := in["name"]; ok && g.IsDefault() {
			return neutron.SecurityGroupCannotUpdateDefault()
		}
		if err := checkRevision(ifMatch, g.RevisionNumber); err != nil {
			return err
		}
		if v, ok := in["name"].(string); ok {
			g.Name = v
		}
		if v, ok := in["description"].(string); ok {
			g.Description = v
		}
		if v, ok := in["stateful"].(bool); ok {
			g.Stateful = v
		}
		if err := tx.UpdateSecurityGroup(r.Context(), g); err != nil {
			return err
		}
		groups := []neutron.SecurityGroup{*g}
		if err := tx.LoadRules(r.Context(), groups); err != nil {
			return err
		}
		g = &groups[0]
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"security_group", renderSecurityGroup(g, nil)}})
	return nil
}

func (s *Server) deleteSecurityGroup(w http.ResponseWriter, r *request) error {
	ifMatch, err := revisionConstraint(r)
	if err != nil {
		return err
	}
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		g, err := getVisibleGroup(r.Context(), tx, r.ctx, r.segs[1])
		if err != nil {
			return err
		}
		if !ownsGroup(r.ctx, g) {
			return policyDenied("rule:delete_security_group")
		}
		inUse, err := tx.SecurityGroupInUse(r.Context(), g.ID)
		if err != nil {
			return err
		}
		if inUse {
			return neutron.SecurityGroupInUse(g.ID)
		}
		if g.IsDefault() && !r.ctx.IsAdmin {
			return neutron.SecurityGroupCannotRemoveDefault()
		}
		if err := checkRevision(ifMatch, g.RevisionNumber); err != nil {
			return err
		}
		return tx.DeleteSecurityGroup(r.Context(), g)
	})
	if err != nil {
		return err
	}
	writeNoContent(w)
	return nil
}

// revisionConstraint parses If-Match: revision_number=N (the
// revision-if-match extension); -1 means no constraint.
func revisionConstraint(r *request) (int64, error) {
	rev := int64(-1)
	for _, h := range r.Header.Values("If-Match") {
		for _, tag := range strings.Split(h, ",") {
			tag = strings.Trim(strings.TrimPrefix(strings.TrimSpace(tag), "W/"), `"`)
			v, ok := strings.CutPrefix(tag, "revision_number=")
			if !ok {
				continue
			}
			if rev != -1 {
				return 0, &neutron.Error{Status: http.StatusBadRequest, Type: "BadRequest",
					Message: "Bad if-match request: Multiple revision_number etags are not supported."}
			}
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, &neutron.Error{Status: http.StatusBadRequest, Type: "BadRequest",
					Message: "Bad if-match request: Revision number etag must be in the format of revision_number=<int>."}
			}
			rev = n
		}
	}
	return rev, nil
}

func checkRevision(want, current int64) error {
	if want >= 0 && want != current {
		return neutron.PreconditionFailed("Constrained to %d, but current revision is %d", want, current)
	}
	return nil
}
