package api

import (
	"fmt"
	"net/http"
	"strings"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

const maxTagLen = 255

func tagResourceNotFound(collection, id string) *neutron.Error {
	return &neutron.Error{Status: http.StatusNotFound, Type: "TagResourceNotFound",
		Message: fmt.Sprintf("Resource %s %s could not be found.", collection, id)}
}

// validateTag is Neutron's validate_tag.
func validateTag(tag string) error {
	if len([]rune(tag)) > maxTagLen {
		return neutron.InvalidInput(fmt.Sprintf("'%s' exceeds maximum length of %d", tag, maxTagLen))
	}
	return nil
}

// validateTagsBody is Neutron's validate_tags: {"tags": [unique strings]}.
func validateTagsBody(body any) ([]string, error) {
	m, ok := body.(map[string]any)
	if !ok {
		return nil, neutron.InvalidInput("Invalid tags body")
	}
	raw, ok := m["tags"]
	if !ok {
		return nil, neutron.InvalidInput("Invalid tags body")
	}
	list, ok := raw.([]any)
	if !ok {
		return nil, neutron.InvalidInput(fmt.Sprintf("'%s' is not a list", neutron.PyStr(raw)))
	}
	tags := make([]string, 0, len(list))
	seen := map[string]bool{}
	var dups []string
	for _, it := range list {
		s, ok := it.(string)
		if !ok {
			return nil, neutron.InvalidInput(fmt.Sprintf("'%s' is not a valid string", neutron.PyStr(it)))
		}
		if err := validateTag(s); err != nil {
			return nil, err
		}
		if seen[s] {
			dups = append(dups, s)
		}
		seen[s] = true
		tags = append(tags, s)
	}
	if len(dups) > 0 {
		return nil, neutron.InvalidInput(fmt.Sprintf("Duplicate items in the list: '%s'", strings.Join(dups, ", ")))
	}
	return tags, nil
}

// tagParent is what a tag route needs to know about the resource it tags.
type tagParent struct {
	target store.TagTarget
	// visible: the caller may see the resource, and so read its tags.
	visible bool
	// mayChange: the caller may change the resource, and so its tags.
	mayChange bool
}

// tagLookup loads the parent of a tag route for the caller; nil when there
// is no such resource.
type tagLookup func(r *request, tx *store.Tx) (*tagParent, error)

// securityGroupTags routes /v2.0/security-groups/{id}/tags[/{tag}].
func (s *Server) securityGroupTags(method string, segs []string) (handlerFunc, error) {
	return s.tagRoutes(method, segs, "security_groups", func(r *request, tx *store.Tx) (*tagParent, error) {
		g, err := tx.GetSecurityGroupFor(r.Context(), r.segs[1], r.ctx.ProjectID)
		if err != nil || g == nil {
			return nil, err
		}
		return &tagParent{
			target:  store.TagTarget{Kind: store.KindSecurityGroup, ID: g.ID, ProjectID: g.ProjectID, StandardAttrID: g.StandardAttrID},
			visible: visibleGroup(r.ctx, g), mayChange: ownsGroup(r.ctx, g),
		}, nil
	})
}

func (s *Server) networkTags(method string, segs []string) (handlerFunc, error) {
	return s.tagRoutes(method, segs, "networks", func(r *request, tx *store.Tx) (*tagParent, error) {
		n, err := tx.GetNetwork(r.Context(), r.segs[1])
		if err != nil || n == nil {
			return nil, err
		}
		return &tagParent{
			target:  store.TagTarget{Kind: store.KindNetwork, ID: n.ID, ProjectID: n.ProjectID, StandardAttrID: n.StandardAttrID},
			visible: visibleNetwork(r.ctx, n), mayChange: ownsNetwork(r.ctx, n),
		}, nil
	})
}

func (s *Server) subnetTags(method string, segs []string) (handlerFunc, error) {
	return s.tagRoutes(method, segs, "subnets", func(r *request, tx *store.Tx) (*tagParent, error) {
		sn, err := tx.GetSubnet(r.Context(), r.segs[1])
		if err != nil || sn == nil {
			return nil, err
		}
		n, err := tx.GetNetwork(r.Context(), sn.NetworkID)
		if err != nil {
			return nil, err
		}
		return &tagParent{
			target:  store.TagTarget{Kind: store.KindSubnet, ID: sn.ID, ProjectID: sn.ProjectID, StandardAttrID: sn.StandardAttrID},
			visible: visibleSubnet(r.ctx, sn, n), mayChange: mayChangeSubnet(r.ctx, sn, n),
		}, nil
	})
}

func (s *Server) portTags(method string, segs []string) (handlerFunc, error) {
	return s.tagRoutes(method, segs, "ports", func(r *request, tx *store.Tx) (*tagParent, error) {
		p, err := tx.GetPort(r.Context(), r.segs[1])
		if err != nil || p == nil {
			return nil, err
		}
		n, err := tx.GetNetwork(r.Context(), p.NetworkID)
		if err != nil {
			return nil, err
		}
		return &tagParent{
			target:  store.TagTarget{Kind: store.KindPort, ID: p.ID, ProjectID: p.ProjectID, StandardAttrID: p.StandardAttrID},
			visible: visiblePort(r.ctx, p, n), mayChange: mayChangePort(r.ctx, p),
		}, nil
	})
}

// tagTarget resolves the parent of a tag request: a resource the caller
// cannot see is TagResourceNotFound, as in Neutron; one it sees but may not
// change is refused with the tag policy of later Neutron releases
// (update_<collection>_tags, delete_<collection>_tags). Neutron 21 has no
// tag policy: whoever sees a resource could retag it (a network owner the
// ports on its network, every project a shared network or group).
func tagTarget(r *request, tx *store.Tx, collection string, lookup tagLookup) (store.TagTarget, error) {
	p, err := lookup(r, tx)
	if err != nil {
		return store.TagTarget{}, err
	}
	if p == nil || !p.visible {
		return store.TagTarget{}, tagResourceNotFound(collection, r.segs[1])
	}
	switch r.Method {
	case http.MethodPut:
		if !p.mayChange {
			return store.TagTarget{}, policyDenied("rule:update_" + collection + "_tags")
		}
	case http.MethodDelete:
		if !p.mayChange {
			return store.TagTarget{}, policyDenied("rule:delete_" + collection + "_tags")
		}
	}
	return p.target, nil
}

func (s *Server) tagRoutes(method string, segs []string, collection string, find tagLookup) (handlerFunc, error) {
	lookup := func(r *request, tx *store.Tx) (store.TagTarget, error) { return tagTarget(r, tx, collection, find) }
	if len(segs) == 3 {
		switch method {
		case http.MethodGet:
			return func(w http.ResponseWriter, r *request) error {
				var tags []string
				err := s.store.Read(r.Context(), func(tx *store.Tx) error {
					t, err := lookup(r, tx)
					if err != nil {
						return err
					}
					tags, err = tx.Tags(r.Context(), t.StandardAttrID)
					return err
				})
				if err != nil {
					return err
				}
				writeJSON(w, http.StatusOK, object{{"tags", tags}})
				return nil
			}, nil
		case http.MethodPut:
			return func(w http.ResponseWriter, r *request) error {
				tags, err := validateTagsBody(r.body)
				if err != nil {
					return err
				}
				err = s.store.Write(r.Context(), func(tx *store.Tx) error {
					t, err := lookup(r, tx)
					if err != nil {
						return err
					}
					return tx.SetTags(r.Context(), t, tags)
				})
				if err != nil {
					return err
				}
				writeJSON(w, http.StatusOK, object{{"tags", tags}})
				return nil
			}, nil
		case http.MethodDelete:
			return func(w http.ResponseWriter, r *request) error {
				err := s.store.Write(r.Context(), func(tx *store.Tx) error {
					t, err := lookup(r, tx)
					if err != nil {
						return err
					}
					return tx.SetTags(r.Context(), t, nil)
				})
				if err != nil {
					return err
				}
				writeNoContent(w)
				return nil
			}, nil
		case http.MethodPost:
			return nil, &neutron.Error{Status: http.StatusNotFound, Type: "HTTPNotFound", Message: "not supported"}
		}
		return nil, neutron.MethodNotAllowed()
	}
	// /tags/{tag}
	switch method {
	case http.MethodGet, http.MethodPut, http.MethodDelete:
	default:
		return nil, neutron.MethodNotAllowed()
	}
	return func(w http.ResponseWriter, r *request) error {
		tag := r.segs[3]
		if err := validateTag(tag); err != nil {
			return err
		}
		var found bool
		do := s.store.Read
		if method != http.MethodGet {
			do = s.store.Write
		}
		err := do(r.Context(), func(tx *store.Tx) error {
			t, err := lookup(r, tx)
			if err != nil {
				return err
			}
			cur, err := tx.Tags(r.Context(), t.StandardAttrID)
			if err != nil {
				return err
			}
			var rest []string
			for _, c := range cur {
				if c == tag {
					found = true
				} else {
					rest = append(rest, c)
				}
			}
			switch method {
			case http.MethodPut:
				if !found {
					return tx.SetTags(r.Context(), t, append(cur, tag))
				}
			case http.MethodDelete:
				if found {
					return tx.SetTags(r.Context(), t, rest)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		switch {
		case method == http.MethodPut:
			writeJSON(w, http.StatusCreated, nil)
		case !found:
			return neutron.TagNotFound(tag)
		default:
			writeNoContent(w)
		}
		return nil
	}, nil
}
