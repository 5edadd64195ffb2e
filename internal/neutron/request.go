package neutron

import "fmt"

// Opt is an attribute a request may leave out. Set is true when the client
// gave it or, on create, when the attribute map filled in its default; an
// attribute whose default is "not specified" (a port's mac_address) stays
// unset until the client names it.
type Opt[T any] struct {
	V   T
	Set bool
}

// Given is what a client's object named, in the attribute map's order, for
// the policy engine: Neutron checks an attribute's policy rule only when a
// request sets the attribute explicitly.
type Given []Explicit

// Explicit is one attribute a client's object named.
type Explicit struct {
	Name string
	// AtDefault: the value sent prints as the attribute's default, which a
	// create does not count as set (Neutron's
	// _is_attribute_explicitly_set compares with the default).
	AtDefault bool
	// Keys are, for a list of objects with declared keys (Attr.Keys), the
	// declared keys each item has, item after item in declared order: the
	// sub-rules "rule:ACTION:ATTR:KEY" Neutron adds.
	Keys []string
}

// Lookup returns the attribute named name, if the client named it.
func (g Given) Lookup(name string) (Explicit, bool) {
	for _, e := range g {
		if e.Name == name {
			return e, true
		}
	}
	return Explicit{}, false
}

// givenOf records what raw, an object as the client sent it, names.
func (r *Resource) givenOf(raw map[string]any) Given {
	var out Given
	for _, a := range r.Attrs {
		v, ok := raw[a.Name]
		if !ok {
			continue
		}
		e := Explicit{Name: a.Name,
			AtDefault: a.HasDefault && !IsNotSpecified(a.Default) && fmt.Sprint(a.Default) == fmt.Sprint(v)}
		if len(a.Keys) > 0 {
			list, _ := v.([]any)
			for _, it := range list {
				m, _ := it.(map[string]any)
				for _, k := range a.Keys {
					if _, ok := m[k]; ok {
						e.Keys = append(e.Keys, k)
					}
				}
			}
		}
		out = append(out, e)
	}
	return out
}

// Request is what every validated request object carries besides its own
// attributes.
type Request struct {
	// ProjectID is the owner a create names (the caller's project unless
	// an admin names another); "" on update.
	ProjectID string
	Given     Given
}

// Head returns r: generic code reaches a typed request's Request through
// it (see Item).
func (r Request) Head() Request { return r }

// Item is a typed request (NetworkRequest, PortRequest...).
type Item interface{ Head() Request }

// Kind is a resource's attribute map with the typed request its bodies
// validate into: the one place where a decoded JSON body becomes a Go
// value. Everything past validation (the API's handlers, IPAM, port
// binding) works on the typed request.
type Kind[R Item] struct {
	*Resource
	// Bulk: a POST may carry a list of objects (Neutron's allow_bulk).
	Bulk bool
	// decode builds the typed request from validated values; it cannot
	// fail (validation has refused what it could not build from).
	decode func(v values, head Request) R
}

// Create validates a POST body, as Neutron's prepare_request_body does,
// into one request per object; bulk reports a list body.
func (k *Kind[R]) Create(ctx *Context, body any) (reqs []R, bulk bool, err error) {
	items, bulk, err := k.prepareBody(ctx, body, true, k.Bulk)
	if err != nil {
		return nil, bulk, err
	}
	reqs = make([]R, len(items))
	for i, it := range items {
		reqs[i] = k.decode(it.attrs, Request{ProjectID: it.attrs.str("project_id").V, Given: it.given})
	}
	return reqs, bulk, nil
}

// Update validates a PUT body.
func (k *Kind[R]) Update(ctx *Context, body any) (R, error) {
	items, _, err := k.prepareBody(ctx, body, false, false)
	if err != nil {
		var zero R
		return zero, err
	}
	return k.decode(items[0].attrs, Request{Given: items[0].given}), nil
}

// values are one object's attributes after conversion and validation, by
// name; the accessors read them as the attribute map guarantees them.
type values map[string]any

func (v values) has(name string) bool { _, ok := v[name]; return ok }

func (v values) str(name string) Opt[string] {
	s, ok := v[name].(string)
	return Opt[string]{s, ok}
}

func (v values) boolean(name string) Opt[bool] {
	b, ok := v[name].(bool)
	return Opt[bool]{b, ok}
}

// optStr is a string attribute that may be null: nil unless a string.
func (v values) optStr(name string) *string {
	if s, ok := v[name].(string); ok {
		return &s
	}
	return nil
}

// optInt is an integer attribute converted to int64 that may be null.
func (v values) optInt(name string) *int {
	if n, ok := v[name].(int64); ok {
		i := int(n)
		return &i
	}
	return nil
}

// list is a list attribute (its items as validation left them).
func (v values) list(name string) ([]any, bool) {
	l, ok := v[name].([]any)
	return l, ok
}
