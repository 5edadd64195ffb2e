package api

import (
	"fmt"
	"net/http"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

func tagResourceNotFound(collection, id string) *neutron.Error {
	return &neutron.Error{Status: http.StatusNotFound, Type: "TagResourceNotFound",
		Message: fmt.Sprintf("Resource %s %s could not be found.", collection, id)}
}

// tagParent is what a tag route needs to know about the resource it tags,
// which the caller may see.
type tagParent struct {
	target store.TagTarget
	// mayChange: the caller may change the resource, and so its tags.
	mayChange bool
}

// tagLookup loads the parent of a tag route for the caller; nil when
// there is no such resource or the caller may not see it.
type tagLookup func(r *request, tx *store.Tx) (*tagParent, error)

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
	if p == nil {
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

// setTags replaces the tags of a tag route's resource.
func (s *Server) setTags(r *request, lookup func(*request, *store.Tx) (store.TagTarget, error), tags []string) error {
	return s.store.Write(r.Context(), func(tx *store.Tx) error {
		t, err := lookup(r, tx)
		if err != nil {
			return err
		}
		return tx.SetTags(r.Context(), t, tags)
	})
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
				tags, err := neutron.ParseTags(r.body)
				if err != nil {
					return err
				}
				if err := s.setTags(r, lookup, tags); err != nil {
					return err
				}
				writeJSON(w, http.StatusOK, object{{"tags", tags}})
				return nil
			}, nil
		case http.MethodDelete:
			return func(w http.ResponseWriter, r *request) error {
				if err := s.setTags(r, lookup, nil); err != nil {
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
		if err := neutron.ValidateTag(tag); err != nil {
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
