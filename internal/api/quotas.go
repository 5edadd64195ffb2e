package api

import (
	"context"
	"fmt"
	"net/http"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// quotaResource is a resource with a per-project limit, and how to count a
// project's use of it (as Neutron counts it).
type quotaResource struct {
	name  string
	count func(tx *store.Tx, ctx context.Context, project string) (int, error)
}

// quotaCounters count a project's use of each quota resource.
var quotaCounters = map[string]func(tx *store.Tx, ctx context.Context, project string) (int, error){
	"network":             (*store.Tx).CountNetworks,
	"subnet":              (*store.Tx).CountSubnets,
	"port":                (*store.Tx).CountPorts,
	"rbac_policy":         (*store.Tx).CountRBACPolicies,
	"security_group":      (*store.Tx).CountSecurityGroups,
	"security_group_rule": (*store.Tx).CountRules,
}

// quotaResources are in the order Neutron prints them.
var quotaResources = func() []quotaResource {
	out := make([]quotaResource, len(neutron.QuotaResources))
	for i, name := range neutron.QuotaResources {
		out[i] = quotaResource{name, quotaCounters[name]}
	}
	return out
}()

// DefaultQuotas are Neutron's default limits for the resources moat serves;
// a negative limit means unlimited.
func DefaultQuotas() map[string]int64 {
	return map[string]int64{"network": 100, "subnet": 100, "port": 500, "rbac_policy": 10,
		"security_group": 10, "security_group_rule": 100}
}

// QuotaResourceNames lists the resources that have quotas.
func QuotaResourceNames() []string { return append([]string(nil), neutron.QuotaResources...) }

func (s *Server) limits(ctx context.Context, tx *store.Tx, project string) (map[string]int64, error) {
	over, err := tx.QuotaOverrides(ctx, project)
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, q := range quotaResources {
		out[q.name] = s.quotas[q.name]
		if v, ok := over[q.name]; ok {
			out[q.name] = v
		}
	}
	return out, nil
}

// checkQuota fails with OverQuota when a project adding delta objects of a
// resource would exceed its limit. It runs inside the write transaction, so
// concurrent creates cannot both slip under the limit.
func (s *Server) checkQuota(ctx context.Context, tx *store.Tx, project, resource string, delta int) error {
	limits, err := s.limits(ctx, tx, project)
	if err != nil {
		return err
	}
	limit := limits[resource]
	if limit < 0 {
		return nil
	}
	used, err := quotaCounters[resource](tx, ctx, project)
	if err != nil {
		return err
	}
	if int64(used+delta) > limit {
		return neutron.OverQuota(resource)
	}
	return nil
}

func (s *Server) quotaRoutes(m string, segs []string) (handlerFunc, error) {
	switch len(segs) {
	case 1:
		return onlyGet(m, s.listQuotas)
	case 2:
		if segs[1] == "tenant" || segs[1] == "project" {
			return onlyGet(m, s.quotaTenant)
		}
		switch m {
		case http.MethodGet:
			return s.showQuota, nil
		case http.MethodPut:
			return s.updateQuota, nil
		case http.MethodDelete:
			return s.deleteQuota, nil
		}
		return nil, neutron.MethodNotAllowed()
	case 3:
		switch segs[2] {
		case "default":
			return onlyGet(m, s.showQuotaDefault)
		case "details":
			return onlyGet(m, s.showQuotaDetails)
		}
	}
	return nil, neutron.NotFoundGeneric()
}

func (s *Server) renderLimits(l map[string]int64) object {
	o := object{}
	for _, q := range quotaResources {
		o = append(o, kv{q.name, l[q.name]})
	}
	return o
}

func (s *Server) listQuotas(w http.ResponseWriter, r *request) error {
	if !r.ctx.IsAdmin {
		return policyDenied("rule:get_quota")
	}
	out := []object{}
	err := s.store.Read(r.Context(), func(tx *store.Tx) error {
		projects, err := tx.QuotaProjects(r.Context())
		if err != nil {
			return err
		}
		for _, p := range projects {
			l, err := s.limits(r.Context(), tx, p)
			if err != nil {
				return err
			}
			out = append(out, append(s.renderLimits(l), kv{"project_id", p}, kv{"tenant_id", p}))
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"quotas", out}})
	return nil
}

func (s *Server) quotaTenant(w http.ResponseWriter, r *request) error {
	writeJSON(w, http.StatusOK, object{{"tenant", object{{"tenant_id", r.ctx.ProjectID}}}})
	return nil
}

func canReadQuota(r *request) error {
	if !r.ctx.IsAdmin && r.segs[1] != r.ctx.ProjectID {
		return policyDenied("rule:get_quota")
	}
	return nil
}

func (s *Server) showQuota(w http.ResponseWriter, r *request) error {
	if err := canReadQuota(r); err != nil {
		return err
	}
	var l map[string]int64
	err := s.store.Read(r.Context(), func(tx *store.Tx) error {
		var err error
		l, err = s.limits(r.Context(), tx, r.segs[1])
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"quota", s.renderLimits(l)}})
	return nil
}

func (s *Server) showQuotaDefault(w http.ResponseWriter, r *request) error {
	if err := canReadQuota(r); err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"quota", s.renderLimits(s.quotas)}})
	return nil
}

func (s *Server) showQuotaDetails(w http.ResponseWriter, r *request) error {
	// Neutron's quotasv2_detail checks admin itself instead of the policy.
	if !r.ctx.IsAdmin && r.segs[1] != r.ctx.ProjectID {
		return &neutron.Error{Status: http.StatusForbidden, Type: "AdminRequired",
			Message: "User does not have admin privileges: Only admin is authorized to access quotas for another project."}
	}
	o := object{}
	err := s.store.Read(r.Context(), func(tx *store.Tx) error {
		l, err := s.limits(r.Context(), tx, r.segs[1])
		if err != nil {
			return err
		}
		for _, q := range quotaResources {
			used, err := q.count(tx, r.Context(), r.segs[1])
			if err != nil {
				return err
			}
			o = append(o, kv{q.name, object{{"limit", l[q.name]}, {"used", used}, {"reserved", 0}}})
		}
		return nil
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"quota", o}})
	return nil
}

func (s *Server) updateQuota(w http.ResponseWriter, r *request) error {
	if !r.ctx.IsAdmin {
		return policyDenied("rule:update_quota")
	}
	req, err := neutron.Quotas.Update(r.ctx, r.body)
	if err != nil {
		return err
	}
	project := r.segs[1]
	var l map[string]int64
	err = s.store.Write(r.Context(), func(tx *store.Tx) error {
		for _, q := range quotaResources {
			v, ok := req.Limits[q.name]
			if !ok {
				continue
			}
			if req.CheckLimit && v >= 0 {
				used, err := q.count(tx, r.Context(), project)
				if err != nil {
					return err
				}
				if int64(used) > v {
					return neutron.BadRequest("Quota limit %d for %s must be greater than or equal to already used %d", v, q.name, used)
				}
			}
			if err := tx.SetQuota(r.Context(), project, q.name, v); err != nil {
				return err
			}
		}
		var err error
		l, err = s.limits(r.Context(), tx, project)
		return err
	})
	if err != nil {
		return err
	}
	writeJSON(w, http.StatusOK, object{{"quota", s.renderLimits(l)}})
	return nil
}

func (s *Server) deleteQuota(w http.ResponseWriter, r *request) error {
	if !r.ctx.IsAdmin {
		return policyDenied("rule:delete_quota")
	}
	var found bool
	err := s.store.Write(r.Context(), func(tx *store.Tx) error {
		var err error
		found, err = tx.DeleteQuotas(r.Context(), r.segs[1])
		return err
	})
	if err != nil {
		return err
	}
	if !found {
		return &neutron.Error{Status: http.StatusNotFound, Type: "TenantQuotaNotFound",
			Message: fmt.Sprintf("Quota for tenant %s could not be found.", r.segs[1])}
	}
	writeNoContent(w)
	return nil
}
