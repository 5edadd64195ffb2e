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

// securityGroupTags routes /v2.0/security-groups/{id}/tags[/{tag}].
func (s *Server) securityGroupTags(method string, segs []string) (handlerFunc, error) {
	lookup := func(r *request, tx *store.Tx) (store.TagTarget, error) {
		g, err := tx.GetSecurityGroup(r.Context(), r.segs[1])
		if err != nil {
			return store.TagTarget{}, err
		}
		if g == nil || (!r.ctx.IsAdmin && g.ProjectID != r.ctx.ProjectID) {
			return store.TagTarget{}, tagResourceNotFound("security_groups", r.segs[1])
		}
		return store.TagTarget{Kind: store.KindSecurityGroup, ID: g.ID, ProjectID: g.ProjectID, StandardAttrID: g.StandardAttrID}, nil
	}
	return s.tagRoutes(method, segs, lookup)
}

func (s *Server) networkTags(method string, segs []string) (handlerFunc, error) {
	return s.tagRoutes(method, segs, func(r *request, tx *store.Tx) (store.TagTarget, error) {
		n, err := tx.GetNetwork(r.Context(), r.segs[1])
		if err != nil {
			return store.TagTarget{}, err
		}
		if n == nil || !ownsNetwork(r.ctx, n) {
			return store.TagTarget{}, tagResourceNotFound("networks", r.segs[1])
		}
		return store.TagTarget{Kind: store.KindNetwork, ID: n.ID, ProjectID: n.ProjectID, StandardAttrID: n.StandardAttrID}, nil
	})
}

func (s *Server) subnetTags(method string, segs []string) (handlerFunc, error) {
	return s.tagRoutes(method, segs, func(r *request, tx *store.Tx) (store.TagTarget, error) {
		sn, err := tx.GetSubnet(r.Context(), r.segs[1])
		if err != nil {
			return store.TagTarget{}, err
		}
		if sn == nil || (!r.ctx.IsAdmin && sn.ProjectID != r.ctx.ProjectID) {
			return store.TagTarget{}, tagResourceNotFound("subnets", r.segs[1])
		}
		return store.TagTarget{Kind: store.KindSubnet, ID: sn.ID, ProjectID: sn.ProjectID, StandardAttrID: sn.StandardAttrID}, nil
	})
}

func (s *Server) portTags(method string, segs []string) (handlerFunc, error) {
	return s.tagRoutes(method, segs, func(r *request, tx *store.Tx) (store.TagTarget, error) {
		p, _, err := getVisiblePort(r.Context(), tx, r.ctx, r.segs[1])
		if err != nil {
			return store.TagTarget{}, tagResourceNotFound("ports", r.segs[1])
		}
		return store.TagTarget{Kind: store.KindPort, ID: p.ID, ProjectID: p.ProjectID, StandardAttrID: p.StandardAttrID}, nil
	})
}

type tagLookup func(r *request, tx *store.Tx) (store.TagTarget, error)

func (s *Server) tagRoutes(method string, segs []string, lookup tagLookup) (handlerFunc, error) {
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
