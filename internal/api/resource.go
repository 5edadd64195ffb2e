package api

import (
	"context"
	"net/http"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// resource is one Neutron collection as the API serves it. The generic
// handlers below do what every collection does, in Neutron's order (parse
// the query or validate the body, read or write in one transaction, find
// the object the caller may see, render, list links, single or bulk
// answers); the hooks hold what differs. T is the stored object, R its
// typed request. Adding a collection is a descriptor and its hooks.
type resource[T any, R neutron.Item] struct {
	kind *neutron.Kind[R]
	// notFound answers an id that names nothing the caller may see (and
	// PUT or DELETE on the collection itself, which looks up the id None).
	notFound func(id string) *neutron.Error
	// hidden answers for an object that exists but that the caller may
	// not see; nil: notFound.
	hidden func(id string) *neutron.Error
	// load reads an object by id, nil when there is none, with the
	// network it lives on where the resource's policy asks who owns that
	// (ports, subnets; nil otherwise or when the network is gone).
	load func(c txn, id string) (*T, *neutron.Network, error)
	// visible is the resource's get policy.
	visible func(c txn, v *T, n *neutron.Network) (bool, error)
	id      func(*T) string
	// render shows an object (an admin sees more of some; create answers
	// order some fields differently); fields= is applied after.
	render func(v *T, admin, created bool) object

	// list reads one page of a list.
	list func(tx *store.Tx, ctx context.Context, q store.ListQuery) ([]T, error)
	// ignoredFilters are filters Neutron accepts but does not apply.
	ignoredFilters []string
	// expand completes listed or shown objects with what only some
	// answers carry (a group's rules, when fields= asks for them).
	expand func(ctx context.Context, tx *store.Tx, items []T, fields []string) error
	// defaultGroup, when set, names the project whose default security
	// group a list creates first ("" for none): Neutron creates it on
	// first use.
	defaultGroup func(caller *neutron.Context, f neutron.Filters) string

	// precheck runs before the create's transaction (policies that need
	// no database).
	precheck func(caller *neutron.Context, reqs []R) error
	// create makes the objects of a (bulk) create, all or nothing: it
	// runs in the create's one transaction.
	create func(c txn, reqs []R, bulk bool) ([]T, error)
	// createAtOnce, when set, is tried first, outside any transaction: it
	// makes the objects and returns true, or returns false having changed
	// nothing (and then create runs, and answers any error).
	createAtOnce func(ctx context.Context, caller *neutron.Context, reqs []R, bulk bool) ([]T, bool, error)
	// update changes v (found for the caller, on network n) and returns
	// what to answer; ifMatch is the If-Match revision, -1 for none.
	update func(c txn, v *T, n *neutron.Network, req R, ifMatch int64) (*T, error)
	// remove deletes v.
	remove func(c txn, v *T, n *neutron.Network, ifMatch int64) error
	// noRevision: the resource has no revision number, and If-Match is
	// not read (RBAC policies).
	noRevision bool
	// concurrentCreate: create runs in store.WriteConcurrent (on
	// PostgreSQL beside other such creates), not in the serialised
	// store.Write; create must then do only what WriteConcurrent allows.
	concurrentCreate bool
	// tags, when set, is v's tag target and whether the caller may change
	// v's tags.
	tags func(caller *neutron.Context, v *T, n *neutron.Network) (target store.TagTarget, mayChange bool)
}

// txn is what a hook works with: the request's context, the transaction
// and the caller.
type txn struct {
	ctx    context.Context
	tx     *store.Tx
	caller *neutron.Context
}

// find returns the object id names if the caller may see it, with its
// network (see load), or the resource's not-found answer.
func (d *resource[T, R]) find(c txn, id string) (*T, *neutron.Network, error) {
	v, n, err := d.load(c, id)
	if err != nil {
		return nil, nil, err
	}
	if v == nil {
		return nil, nil, d.notFound(id)
	}
	ok, err := d.visible(c, v, n)
	if err != nil {
		return nil, nil, err
	}
	if !ok {
		if d.hidden != nil {
			return nil, nil, d.hidden(id)
		}
		return nil, nil, d.notFound(id)
	}
	return v, n, nil
}

// routes is the resource's handler set.
func (d *resource[T, R]) routes(s *Server) collection {
	c := collection{
		list: d.listHandler(s), show: d.showHandler(s), create: d.createHandler(s),
		update: d.updateHandler(s), del: d.deleteHandler(s), notFound: d.notFound("None"),
	}
	if d.tags != nil {
		c.tags = func(method string, segs []string) (handlerFunc, error) {
			return s.tagRoutes(method, segs, d.kind.Plural, d.tagParent)
		}
	}
	return c
}

func (d *resource[T, R]) listHandler(s *Server) handlerFunc {
	return func(w http.ResponseWriter, r *request) error {
		p, err := parseList(r, d.kind.Resource, d.ignoredFilters...)
		if err != nil {
			return err
		}
		var items []T
		read := func(tx *store.Tx) error {
			var err error
			if items, err = d.list(tx, r.Context(), p.query); err != nil || d.expand == nil {
				return err
			}
			return d.expand(r.Context(), tx, items, p.fields)
		}
		if d.defaultGroup != nil {
			err = s.readWithDefaultGroup(r.Context(), r.ctx, d.defaultGroup(r.ctx, p.query.Filters), read)
		} else {
			err = s.store.Read(r.Context(), read)
		}
		if err != nil {
			return err
		}
		writeList(w, r, p, d.kind.Plural, items, d.id,
			func(v *T) object { return d.render(v, r.ctx.IsAdmin, false).only(p.fields) })
		return nil
	}
}

func (d *resource[T, R]) showHandler(s *Server) handlerFunc {
	return func(w http.ResponseWriter, r *request) error {
		fields := fieldsParam(r)
		var v *T
		err := s.store.Read(r.Context(), func(tx *store.Tx) error {
			var err error
			if v, _, err = d.find(txn{r.Context(), tx, r.ctx}, r.segs[1]); err != nil || d.expand == nil {
				return err
			}
			items := []T{*v}
			if err := d.expand(r.Context(), tx, items, fields); err != nil {
				return err
			}
			v = &items[0]
			return nil
		})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, object{{d.kind.Singular, d.render(v, r.ctx.IsAdmin, false).only(fields)}})
		return nil
	}
}

// createHandler creates one object or, for a bulk POST, all of a list or
// none.
func (d *resource[T, R]) createHandler(s *Server) handlerFunc {
	return func(w http.ResponseWriter, r *request) error {
		reqs, bulk, err := d.kind.Create(r.ctx, r.body)
		if err != nil {
			return err
		}
		if d.precheck != nil {
			if err := d.precheck(r.ctx, reqs); err != nil {
				return err
			}
		}
		var created []T
		if d.createAtOnce != nil {
			created, done, err := d.createAtOnce(r.Context(), r.ctx, reqs, bulk)
			if err != nil {
				return err
			}
			if done {
				writeJSON(w, http.StatusCreated, d.created(created, r.ctx.IsAdmin, bulk))
				return nil
			}
		}
		write := s.store.Write
		if d.concurrentCreate {
			write = s.store.WriteConcurrent
		}
		err = write(r.Context(), func(tx *store.Tx) error {
			var err error
			created, err = d.create(txn{r.Context(), tx, r.ctx}, reqs, bulk)
			return err
		})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, d.created(created, r.ctx.IsAdmin, bulk))
		return nil
	}
}

// created is the body of a create's answer.
func (d *resource[T, R]) created(created []T, admin, bulk bool) object {
	if bulk {
		out := make([]object, len(created))
		for i := range created {
			out[i] = d.render(&created[i], admin, true)
		}
		return object{{d.kind.Plural, out}}
	}
	return object{{d.kind.Singular, d.render(&created[0], admin, true)}}
}

// ifMatch reads the If-Match revision of a request on the resource.
func (d *resource[T, R]) ifMatch(r *request) (int64, error) {
	if d.noRevision {
		return -1, nil
	}
	return revisionConstraint(r)
}

func (d *resource[T, R]) updateHandler(s *Server) handlerFunc {
	return func(w http.ResponseWriter, r *request) error {
		req, err := d.kind.Update(r.ctx, r.body)
		if err != nil {
			return err
		}
		ifMatch, err := d.ifMatch(r)
		if err != nil {
			return err
		}
		var v *T
		err = s.store.Write(r.Context(), func(tx *store.Tx) error {
			c := txn{r.Context(), tx, r.ctx}
			found, n, err := d.find(c, r.segs[1])
			if err != nil {
				return err
			}
			v, err = d.update(c, found, n, req, ifMatch)
			return err
		})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, object{{d.kind.Singular, d.render(v, r.ctx.IsAdmin, false)}})
		return nil
	}
}

func (d *resource[T, R]) deleteHandler(s *Server) handlerFunc {
	return func(w http.ResponseWriter, r *request) error {
		ifMatch, err := d.ifMatch(r)
		if err != nil {
			return err
		}
		err = s.store.Write(r.Context(), func(tx *store.Tx) error {
			c := txn{r.Context(), tx, r.ctx}
			v, n, err := d.find(c, r.segs[1])
			if err != nil {
				return err
			}
			return d.remove(c, v, n, ifMatch)
		})
		if err != nil {
			return err
		}
		writeNoContent(w)
		return nil
	}
}

// tagParent resolves the object of a tag route for the caller; nil when
// there is none or the caller may not see it.
func (d *resource[T, R]) tagParent(r *request, tx *store.Tx) (*tagParent, error) {
	c := txn{r.Context(), tx, r.ctx}
	v, n, err := d.load(c, r.segs[1])
	if err != nil || v == nil {
		return nil, err
	}
	ok, err := d.visible(c, v, n)
	if err != nil || !ok {
		return nil, err
	}
	target, mayChange := d.tags(r.ctx, v, n)
	return &tagParent{target: target, mayChange: mayChange}, nil
}

// checkQuotaItems checks a resource's quota for the objects of a create,
// per owning project, before anything is created (Neutron's API does this
// first).
func checkQuotaItems[R neutron.Item](s *Server, c txn, items []R, resource string) error {
	perProject := map[string]int{}
	var order []string
	for _, it := range items {
		p := it.Head().ProjectID
		if perProject[p] == 0 {
			order = append(order, p)
		}
		perProject[p]++
	}
	for _, p := range order {
		if err := s.checkQuota(c.ctx, c.tx, p, resource, perProject[p]); err != nil {
			return err
		}
	}
	return nil
}

// byCaller is a visibility that asks nothing of the database.
func byCaller[T any](visible func(*neutron.Context, *T, *neutron.Network) bool) func(txn, *T, *neutron.Network) (bool, error) {
	return func(c txn, v *T, n *neutron.Network) (bool, error) { return visible(c.caller, v, n), nil }
}

// each creates the objects of a create one after the other.
func each[T any, R any](reqs []R, create func(*R) (*T, error)) ([]T, error) {
	out := make([]T, 0, len(reqs))
	for i := range reqs {
		v, err := create(&reqs[i])
		if err != nil {
			return nil, err
		}
		out = append(out, *v)
	}
	return out, nil
}
