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

func renderSecurityGroup(g *neutron.SecurityGroup, _, _ bool) object {
	rules := make([]object, len(g.Rules))
	for i := range g.Rules {
		rules[i] = renderEmbeddedRule(&g.Rules[i])
	}
	return object{
		{"id", g.ID}, {"name", g.Name}, {"stateful", g.Stateful}, {"tenant_id", g.ProjectID},
		{"description", g.Description}, {"shared", g.Shared}, {"security_group_rules", rules},
		{"tags", g.Tags}, {"created_at", fmtTime(g.CreatedAt)}, {"updated_at", fmtTime(g.UpdatedAt)},
		{"revision_number", g.RevisionNumber}, {"project_id", g.ProjectID},
	}
}

// securityGroupResource serves security groups: a project's default group
// appears on first use; shared groups are for use, not for change.
func (s *Server) securityGroupResource() *resource[neutron.SecurityGroup, neutron.SecurityGroupRequest] {
	return &resource[neutron.SecurityGroup, neutron.SecurityGroupRequest]{
		kind:     neutron.SecurityGroups,
		notFound: neutron.SecurityGroupNotFound,
		// GetSecurityGroupFor marks a group shared with the caller.
		load: func(c txn, id string) (*neutron.SecurityGroup, *neutron.Network, error) {
			g, err := c.tx.GetSecurityGroupFor(c.ctx, id, c.caller.ProjectID)
			return g, nil, err
		},
		visible: byCaller(visibleGroup),
		id:      func(g *neutron.SecurityGroup) string { return g.ID },
		render:  renderSecurityGroup,
		list:    (*store.Tx).ListSecurityGroups,
		expand: func(ctx context.Context, tx *store.Tx, groups []neutron.SecurityGroup, fields []string) error {
			if wants(fields, "security_group_rules") {
				return tx.LoadRules(ctx, groups)
			}
			return nil
		},
		defaultGroup: func(caller *neutron.Context, f neutron.Filters) string {
			if caller.ProjectID == "" {
				return ""
			}
			if project := filterProject(f); project != "" {
				return project
			}
			return caller.ProjectID
		},
		create: s.createSecurityGroups,
		update: updateSecurityGroup,
		remove: deleteSecurityGroup,
		tags: func(caller *neutron.Context, g *neutron.SecurityGroup, _ *neutron.Network) (store.TagTarget, bool) {
			return store.TagTarget{Kind: store.KindSecurityGroup, ID: g.ID, ProjectID: g.ProjectID, StandardAttrID: g.StandardAttrID},
				ownsGroup(caller, g)
		},
	}
}

// visibleGroup reports whether the caller may see group g (loaded with
// GetSecurityGroupFor): admins see all groups, members their project's and
// those shared with them through RBAC.
func visibleGroup(ctx *neutron.Context, g *neutron.SecurityGroup, _ *neutron.Network) bool {
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

func (s *Server) createSecurityGroups(c txn, reqs []neutron.SecurityGroupRequest, _ bool) ([]neutron.SecurityGroup, error) {
	// The API's quota check comes first, for the whole request.
	if err := checkQuotaItems(s, c, reqs, "security_group"); err != nil {
		return nil, err
	}
	return each(reqs, func(req *neutron.SecurityGroupRequest) (*neutron.SecurityGroup, error) {
		g := &neutron.SecurityGroup{ID: uuid.NewString(), ProjectID: req.ProjectID, Name: req.Name.V,
			Description: req.Description.V, Stateful: req.Stateful.V}
		if err := s.ensureDefaultGroupTx(c.ctx, c.tx, c.caller, g.ProjectID); err != nil {
			return nil, err
		}
		if err := s.checkQuota(c.ctx, c.tx, g.ProjectID, "security_group_rule", 2); err != nil {
			return nil, err
		}
		return g, c.tx.CreateSecurityGroup(c.ctx, g, neutron.DefaultRules(g.ID, g.ProjectID, false), false)
	})
}

func updateSecurityGroup(c txn, g *neutron.SecurityGroup, _ *neutron.Network, req neutron.SecurityGroupRequest, ifMatch int64) (*neutron.SecurityGroup, error) {
	if !ownsGroup(c.caller, g) {
		return nil, policyDenied("rule:update_security_group")
	}
	if st := req.Stateful; st.Set && st.V != g.Stateful {
		inUse, err := c.tx.SecurityGroupInUse(c.ctx, g.ID)
		if err != nil {
			return nil, err
		}
		if inUse {
			return nil, neutron.SecurityGroupInUse(g.ID)
		}
	}
	if req.Name.Set && g.IsDefault() {
		return nil, neutron.SecurityGroupCannotUpdateDefault()
	}
	if err := checkRevision(ifMatch, g.RevisionNumber); err != nil {
		return nil, err
	}
	set(&g.Name, req.Name)
	set(&g.Description, req.Description)
	set(&g.Stateful, req.Stateful)
	if err := c.tx.UpdateSecurityGroup(c.ctx, g); err != nil {
		return nil, err
	}
	groups := []neutron.SecurityGroup{*g}
	if err := c.tx.LoadRules(c.ctx, groups); err != nil {
		return nil, err
	}
	return &groups[0], nil
}

func deleteSecurityGroup(c txn, g *neutron.SecurityGroup, _ *neutron.Network, ifMatch int64) error {
	if !ownsGroup(c.caller, g) {
		return policyDenied("rule:delete_security_group")
	}
	inUse, err := c.tx.SecurityGroupInUse(c.ctx, g.ID)
	if err != nil {
		return err
	}
	if inUse {
		return neutron.SecurityGroupInUse(g.ID)
	}
	if g.IsDefault() && !c.caller.IsAdmin {
		return neutron.SecurityGroupCannotRemoveDefault()
	}
	if err := checkRevision(ifMatch, g.RevisionNumber); err != nil {
		return err
	}
	return c.tx.DeleteSecurityGroup(c.ctx, g)
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
