package api

import (
	"context"
	"net/http"

	"github.com/google/uuid"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// The logging extension lives under /v2.0/log: /log/logs is a collection
// like any other, /log/loggable-resources the list of what can be logged.
// Its policies (neutron/conf/policies/logging.py) are admin only; a
// member's show, update or delete of a log finds nothing (Neutron hides
// what get_log does not allow), a list shows nothing.

func renderLog(l *neutron.Log, _, _ bool) object {
	return object{
		{"id", l.ID}, {"project_id", l.ProjectID}, {"name", l.Name}, {"resource_type", l.ResourceType},
		{"resource_id", nullable(l.ResourceID)}, {"target_id", nullable(l.TargetID)}, {"event", l.Event},
		{"enabled", l.Enabled}, {"description", l.Description}, {"created_at", fmtTime(l.CreatedAt)},
		{"updated_at", fmtTime(l.UpdatedAt)}, {"revision_number", l.RevisionNumber}, {"tenant_id", l.ProjectID},
	}
}

// nullable shows "" as JSON null.
func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func (s *Server) logResource() *resource[neutron.Log, neutron.LogRequest] {
	return &resource[neutron.Log, neutron.LogRequest]{
		kind:     neutron.Logs,
		notFound: neutron.LogNotFound,
		hidden:   func(string) *neutron.Error { return neutron.NotFoundGeneric() },
		load:     alone((*store.Tx).GetLog),
		visible:  byCaller(func(c *neutron.Context, _ *neutron.Log, _ *neutron.Network) bool { return c.IsAdmin }),
		id:       func(l *neutron.Log) string { return l.ID },
		render:   renderLog,
		list: func(tx *store.Tx, ctx context.Context, q store.ListQuery) ([]neutron.Log, error) {
			if q.Scope != nil { // get_log is admin only: a member's list is empty
				return nil, nil
			}
			return tx.ListLogs(ctx, q)
		},
		precheck: func(caller *neutron.Context, _ []neutron.LogRequest) error {
			if !caller.IsAdmin {
				return policyDenied("rule:create_log")
			}
			return nil
		},
		create: createLog,
		update: updateLog,
		remove: func(c txn, l *neutron.Log, _ *neutron.Network, ifMatch int64) error {
			if err := checkRevision(ifMatch, l.RevisionNumber); err != nil {
				return err
			}
			return c.tx.DeleteLog(c.ctx, l)
		},
	}
}

// createLog validates a log as Neutron's security-group validator does:
// the resource type is one moat logs, the group and the port exist, and
// the port carries the group when both are named.
func createLog(c txn, reqs []neutron.LogRequest, _ bool) ([]neutron.Log, error) {
	req := reqs[0]
	if req.ResourceType != neutron.LogResourceSecurityGroup {
		return nil, neutron.InvalidLogResourceType(req.ResourceType)
	}
	l := &neutron.Log{ID: uuid.NewString(), ProjectID: req.ProjectID, Name: req.Name.V, Description: req.Description.V,
		ResourceType: req.ResourceType, Event: req.Event, Enabled: req.Enabled.V}
	if req.ResourceID != nil {
		l.ResourceID = *req.ResourceID
		g, err := c.tx.GetSecurityGroupFor(c.ctx, l.ResourceID, c.caller.ProjectID)
		if err != nil {
			return nil, err
		}
		if g == nil || !visibleGroup(c.caller, g, nil) {
			return nil, neutron.LogResourceNotFound(l.ResourceID)
		}
		l.ResourceID = g.ID
	}
	if req.TargetID != nil {
		l.TargetID = *req.TargetID
		p, err := c.tx.GetPort(c.ctx, l.TargetID)
		if err != nil {
			return nil, err
		}
		if p == nil {
			return nil, neutron.LogTargetNotFound(l.TargetID)
		}
		l.TargetID = p.ID
	}
	if l.ResourceID != "" && l.TargetID != "" {
		has, err := c.tx.PortHasGroup(c.ctx, l.TargetID, l.ResourceID)
		if err != nil {
			return nil, err
		}
		if !has {
			return nil, neutron.InvalidLogResourceConstraint(l.ResourceID, l.TargetID)
		}
	}
	if err := c.tx.CreateLog(c.ctx, l); err != nil {
		return nil, err
	}
	return []neutron.Log{*l}, nil
}

func updateLog(c txn, l *neutron.Log, _ *neutron.Network, req neutron.LogRequest, ifMatch int64) (*neutron.Log, error) {
	if err := checkRevision(ifMatch, l.RevisionNumber); err != nil {
		return nil, err
	}
	set(&l.Name, req.Name)
	set(&l.Description, req.Description)
	set(&l.Enabled, req.Enabled)
	if err := c.tx.UpdateLog(c.ctx, l); err != nil {
		return nil, err
	}
	return l, nil
}

// logRoutes serves /v2.0/log/...: handlers see the path after /log.
func (s *Server) logRoutes(r *request) (handlerFunc, error) {
	segs, m := r.segs, r.Method
	if len(segs) < 2 {
		return nil, neutron.NotFoundGeneric()
	}
	var h handlerFunc
	var err error
	switch segs[1] {
	case "logs":
		h, err = collectionRoutes(m, segs[1:], s.logs)
	case "loggable-resources":
		if len(segs) != 2 {
			return nil, neutron.NotFoundGeneric()
		}
		h, err = onlyGet(m, s.listLoggableResources)
	default:
		return nil, neutron.NotFoundGeneric()
	}
	if err != nil {
		return nil, err
	}
	return func(w http.ResponseWriter, r *request) error {
		r.segs = r.segs[1:]
		return h(w, r)
	}, nil
}

// listLoggableResources is GET /v2.0/log/loggable-resources (admin only:
// a member's list is empty, as Neutron filters it by policy).
func (s *Server) listLoggableResources(w http.ResponseWriter, r *request) error {
	out := []object{}
	if r.ctx.IsAdmin {
		for _, t := range neutron.LoggableResourceTypes {
			out = append(out, object{{"type", t}})
		}
	}
	writeJSON(w, http.StatusOK, object{{"loggable_resources", out}})
	return nil
}
