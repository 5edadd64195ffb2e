package neutron

import (
	"sort"
	"strings"
)

// Context is the identity a request runs as, as the API resolved it.
type Context struct {
	UserID    string
	ProjectID string // "" for Neutron's noauth admin context without a project
	Roles     []string
	IsAdmin   bool
	IsAdvsvc  bool
	// AgentHost is set for a host agent's own credential (an agent token):
	// it may watch and report that host only, and nothing else of the API.
	AgentHost string
}

// Attr describes one attribute of a resource the way Neutron's
// RESOURCE_ATTRIBUTE_MAP does; the generic request processing below reads
// it to reproduce Neutron's checks and messages.
type Attr struct {
	Name      string
	AllowPost bool
	AllowPut  bool
	// Default is filled in on POST when the attribute is absent; without
	// HasDefault the attribute is required on POST.
	Default    any
	HasDefault bool
	// Convert normalises a value (Neutron's convert_to). It returns an
	// *Error for values it cannot convert.
	Convert func(any) (any, error)
	// Validate checks a (converted) value. It returns a Reason for Neutron's
	// "Invalid input for X. Reason: ..." or an *Error to raise as is.
	Validate func(any) error
	Visible  bool
	Filter   bool
	SortKey  bool
	// Keys are the keys of a list-of-objects attribute (fixed_ips,
	// allowed_address_pairs) that Neutron's policy adds sub-rules for.
	// Neutron follows each item's key order; JSON objects reach moat
	// unordered, so the sub-rules follow this order (the one gophercloud
	// and the CLI send).
	Keys []string
}

// Resource is a Neutron API resource: its names and its attribute map, in
// Neutron's order (which decides which of several errors is reported).
type Resource struct {
	Singular string
	Plural   string
	Attrs    []Attr
}

// Attr returns the attribute named name.
func (r *Resource) Attr(name string) (*Attr, bool) {
	for i := range r.Attrs {
		if r.Attrs[i].Name == name {
			return &r.Attrs[i], true
		}
	}
	return nil, false
}

// item is one object of a request body after prepareBody: its converted
// and validated attributes (defaults filled in on create) and what the
// client's object named.
type item struct {
	attrs values
	given Given
}

// prepareBody checks and normalises a decoded POST or PUT body exactly as
// Neutron's prepare_request_body does: body shape, project ownership,
// unknown attributes, required and read-only attributes, defaults, then
// conversion and validation. It returns one item per object (several for a
// bulk POST) and whether the request was a bulk one. Kind's Create and
// Update turn the items into typed requests.
func (r *Resource) prepareBody(ctx *Context, body any, create, allowBulk bool) ([]item, bool, error) {
	top, _ := body.(map[string]any)
	if isEmptyBody(body) {
		return nil, false, BadRequest("Resource body required")
	}
	if top == nil {
		return nil, false, BadRequest("Body contains invalid data")
	}
	if raw, ok := top[r.Plural]; ok {
		if !allowBulk {
			return nil, false, BadRequest("Bulk operation not supported")
		}
		list, isList := raw.([]any)
		if isEmptyBody(raw) {
			return nil, true, BadRequest("Resources required")
		}
		if !isList {
			return nil, true, BadRequest("Body contains invalid data")
		}
		items := make([]item, 0, len(list))
		for _, it := range list {
			obj, isObj := it.(map[string]any)
			if !isObj {
				return nil, true, BadRequest("Body contains invalid data")
			}
			if inner, wrapped := obj[r.Singular]; wrapped {
				obj = map[string]any{r.Singular: inner}
			} else {
				obj = map[string]any{r.Singular: obj}
			}
			res, _, err := r.prepareBody(ctx, obj, create, false)
			if err != nil {
				return nil, true, err
			}
			items = append(items, res[0])
		}
		return items, true, nil
	}
	raw, ok := top[r.Singular]
	if !ok || raw == nil {
		return nil, false, BadRequest("Unable to find '%s' in request body", r.Singular)
	}
	res, ok := raw.(map[string]any)
	if !ok {
		return nil, false, BadRequest("Object '%s' contains invalid data", r.Singular)
	}
	given := r.givenOf(res)
	res = cloneMap(res)
	if err := r.populateProject(ctx, res, create); err != nil {
		return nil, false, err
	}
	if err := r.verifyAttributes(res); err != nil {
		return nil, false, err
	}
	if create {
		for _, a := range r.Attrs {
			_, present := res[a.Name]
			switch {
			case a.AllowPost && !present && !a.HasDefault:
				return nil, false, BadRequest("Failed to parse request. Required attribute '%s' not specified", a.Name)
			case a.AllowPost && !present:
				res[a.Name] = a.Default
			case !a.AllowPost && present:
				return nil, false, BadRequest("Attribute '%s' not allowed in POST", a.Name)
			}
		}
	} else {
		for _, a := range r.Attrs {
			if _, present := res[a.Name]; present && !a.AllowPut {
				return nil, false, BadRequest("Cannot update read-only attribute %s", a.Name)
			}
		}
	}
	if err := r.convertValues(res); err != nil {
		return nil, false, err
	}
	return []item{{attrs: res, given: given}}, false, nil
}

// isEmptyBody mirrors Python truthiness of the parsed body: None, {}, [] and
// "" all count as "no body".
func isEmptyBody(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case map[string]any:
		return len(x) == 0
	case []any:
		return len(x) == 0
	case string:
		return x == ""
	case bool:
		return !x
	}
	return false
}

func cloneMap(m map[string]any) map[string]any {
	out := make(map[string]any, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// populateProject reproduces neutron_lib's populate_project_id: tenant_id and
// project_id mirror each other and must agree, only admins may name another
// project, and creates default to the caller's project.
func (r *Resource) populateProject(ctx *Context, res map[string]any, create bool) error {
	if _, ok := r.Attr("tenant_id"); !ok {
		return nil
	}
	t, hasT := res["tenant_id"]
	p, hasP := res["project_id"]
	switch {
	case hasT && !hasP:
		res["project_id"] = t
		p, hasP = t, true
	case hasP && !hasT:
		res["tenant_id"] = p
		t, hasT = p, true
	}
	if hasT || hasP {
		if !pyEqual(t, p) {
			return BadRequest("'project_id' and 'tenant_id' do not match")
		}
		if s, _ := p.(string); (!isString(p) || s != ctx.ProjectID) && !(ctx.IsAdmin || ctx.IsAdvsvc) {
			return BadRequest("Specifying 'project_id' or 'tenant_id' other than the authenticated project in request requires admin or advsvc privileges")
		}
	}
	if create && !hasP {
		if ctx.ProjectID == "" {
			return BadRequest("Running without keystone AuthN requires that tenant_id is specified")
		}
		res["project_id"] = ctx.ProjectID
		res["tenant_id"] = ctx.ProjectID
	}
	return nil
}

func isString(v any) bool { _, ok := v.(string); return ok }

func pyEqual(a, b any) bool { return pyRepr(a) == pyRepr(b) }

func (r *Resource) verifyAttributes(res map[string]any) error {
	var extra []string
	for k := range res {
		if _, ok := r.Attr(k); !ok {
			extra = append(extra, k)
		}
	}
	if len(extra) == 0 {
		return nil
	}
	sort.Strings(extra) // Neutron prints a set, in hash order; sorted is the stable choice
	return BadRequest("Unrecognized attribute(s) '%s'", strings.Join(extra, ", "))
}

func (r *Resource) convertValues(res map[string]any) error {
	for _, a := range r.Attrs {
		v, ok := res[a.Name]
		if !ok {
			continue
		}
		if a.Convert != nil {
			cv, err := a.Convert(v)
			if err != nil {
				return err
			}
			v = cv
			res[a.Name] = v
		}
		if a.Validate != nil {
			if err := a.Validate(v); err != nil {
				if r, isReason := err.(Reason); isReason {
					return BadRequest("Invalid input for %s. Reason: %s.", a.Name, string(r))
				}
				return err
			}
		}
	}
	return nil
}

// Filters are list filters after validation and conversion, by attribute.
type Filters map[string][]any

// reserved query parameters that are not filters.
var listParams = map[string]bool{
	"fields": true, "sort_key": true, "sort_dir": true, "limit": true, "marker": true, "page_reverse": true,
}

// ParseFilters turns query parameters into filters the way Neutron's
// get_filters does with filter validation on: every key must be a filter
// attribute, values go through the attribute's converter, and empty strings
// are kept (empty-string-filtering). ignored lists filter attributes Neutron
// accepts but does not apply (normalized_cidr).
func (r *Resource) ParseFilters(query map[string][]string, ignored ...string) (Filters, error) {
	out := Filters{}
	var invalid []string
	keys := make([]string, 0, len(query))
	for k := range query {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if listParams[k] {
			continue
		}
		a, ok := r.Attr(k)
		if !ok || !a.Filter {
			invalid = append(invalid, k)
			continue
		}
		skip := false
		for _, ig := range ignored {
			skip = skip || ig == k
		}
		if skip {
			continue
		}
		var vals []any
		for _, raw := range query[k] {
			var v any = raw
			if a.Convert != nil {
				cv, err := a.Convert(raw)
				if err != nil {
					return nil, err
				}
				v = cv
			}
			vals = append(vals, v)
		}
		if len(vals) > 0 {
			out[k] = vals
		}
	}
	if len(invalid) > 0 {
		return nil, BadRequest("%s is invalid attribute for filtering", pyRepr(invalid))
	}
	return out, nil
}

// Sort is one sort key and its direction.
type Sort struct {
	Key string
	Asc bool
}

// ParseSorts validates sort_key/sort_dir pairs like Neutron's get_sorts.
func (r *Resource) ParseSorts(keys, dirs []string) ([]Sort, error) {
	keys, dirs = nonEmpty(keys), nonEmpty(dirs)
	if len(keys) != len(dirs) {
		return nil, BadRequest("The number of sort_keys and sort_dirs must be same")
	}
	var absent, badDirs []string
	for _, k := range keys {
		if a, ok := r.Attr(k); !ok || !a.SortKey {
			absent = append(absent, k)
		}
	}
	if len(absent) > 0 {
		return nil, BadRequest("%s is invalid attribute for sort_keys", pyRepr(absent))
	}
	for _, d := range dirs {
		if d != "asc" && d != "desc" {
			badDirs = append(badDirs, d)
		}
	}
	if len(badDirs) > 0 {
		return nil, BadRequest("%s is invalid value for sort_dirs, valid value is 'asc' and 'desc'", pyRepr(badDirs))
	}
	out := make([]Sort, len(keys))
	for i := range keys {
		out[i] = Sort{Key: keys[i], Asc: dirs[i] == "asc"}
	}
	return out, nil
}

func nonEmpty(in []string) []string {
	var out []string
	for _, s := range in {
		if s != "" {
			out = append(out, s)
		}
	}
	return out
}
