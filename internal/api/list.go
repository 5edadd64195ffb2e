package api

import (
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/moat-sg/moat/internal/neutron"
	"github.com/moat-sg/moat/internal/store"
)

// listParams are a list request's fields, filters, sorting and paging.
type listParams struct {
	fields []string
	query  store.ListQuery
}

// parseList reads Neutron's list query parameters for res. ignored names
// filter attributes Neutron accepts but does not apply.
func parseList(r *request, res *neutron.Resource, ignored ...string) (*listParams, error) {
	q := r.query
	p := &listParams{fields: fieldsParam(r)}
	filters, err := res.ParseFilters(q, ignored...)
	if err != nil {
		return nil, err
	}
	sorts, err := res.ParseSorts(q["sort_key"], q["sort_dir"])
	if err != nil {
		return nil, err
	}
	limit := 0
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(strings.TrimSpace(v))
		if err != nil || n < 0 {
			return nil, &neutron.Error{Status: http.StatusBadRequest, Type: "BadRequest",
				Message: "Bad limit request: Limit must be an integer 0 or greater and not '" + v + "'."}
		}
		limit = n
	}
	p.query = store.ListQuery{Filters: filters, Sorts: sorts, Limit: limit, Caller: r.ctx.ProjectID}
	if limit > 0 {
		p.query.Marker = q.Get("marker")
		p.query.PageReverse = strings.EqualFold(q.Get("page_reverse"), "true")
	}
	if !r.ctx.IsAdmin {
		p.query.Scope = &store.Scope{ProjectID: r.ctx.ProjectID}
	}
	return p, nil
}

// fieldsParam is the non-empty values of fields=.
func fieldsParam(r *request) []string {
	var out []string
	for _, f := range r.query["fields"] {
		if f != "" {
			out = append(out, f)
		}
	}
	return out
}

// maxQueryParams is the most query parameters a request may carry. It is
// net/url's limit, beyond which url.Query returns no parameters at all: a
// filtered list would then answer with every object the caller may see,
// fields= and filters silently gone.
const maxQueryParams = 10000

// parseQuery splits a query string as Neutron's WSGI layer (webob's
// parse_qsl) does: pairs separated by "&" only, so that a ";" is part of a
// value rather than a reason to drop the pair as url.ParseQuery does; "+"
// and %XX decoded. What it cannot decode is refused, never skipped, so that
// no filter is ever silently ignored.
func parseQuery(raw string) (url.Values, error) {
	q := url.Values{}
	if raw == "" {
		return q, nil
	}
	if n := strings.Count(raw, "&") + 1; n > maxQueryParams {
		return nil, neutron.BadRequest("Too many query parameters: %d, at most %d are accepted.", n, maxQueryParams)
	}
	for _, pair := range strings.Split(raw, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err := url.QueryUnescape(k)
		if err != nil {
			return nil, neutron.BadRequest("Invalid query parameter %q: %v.", k, err)
		}
		val, err := url.QueryUnescape(v)
		if err != nil {
			return nil, neutron.BadRequest("Invalid value of query parameter %q: %v.", key, err)
		}
		q[key] = append(q[key], val)
	}
	return q, nil
}

// wants reports whether a response with these fields includes name.
func wants(fields []string, name string) bool {
	if len(fields) == 0 {
		return true
	}
	for _, f := range fields {
		if f == name {
			return true
		}
	}
	return false
}

// pageLinks are Neutron's "<collection>_links": next unless the last page
// was reached going forward, previous unless the first page was reached
// going backward. They repeat the request's query with the marker moved.
func pageLinks(r *request, q store.ListQuery, ids []string) []object {
	if q.Limit == 0 {
		return nil
	}
	var links []object
	if !(len(ids) < q.Limit && !q.PageReverse) {
		marker := ""
		if len(ids) > 0 {
			marker = ids[len(ids)-1]
		}
		links = append(links, object{{"rel", "next"}, {"href", pageURL(r, marker, false)}})
	}
	if !(len(ids) < q.Limit && q.PageReverse) {
		marker := ""
		if len(ids) > 0 {
			marker = ids[0]
		}
		links = append(links, object{{"rel", "previous"}, {"href", pageURL(r, marker, true)}})
	}
	return links
}

// pageURL rebuilds the request URL with marker (and page_reverse) set,
// keeping the other parameters in the client's order as Neutron does.
func pageURL(r *request, marker string, reverse bool) string {
	var parts []string
	for _, pair := range strings.Split(r.URL.RawQuery, "&") {
		if pair == "" {
			continue
		}
		k, v, _ := strings.Cut(pair, "=")
		key, err1 := url.QueryUnescape(k)
		val, err2 := url.QueryUnescape(v)
		if err1 != nil || err2 != nil || key == "marker" || key == "page_reverse" {
			continue
		}
		parts = append(parts, url.QueryEscape(key)+"="+url.QueryEscape(val))
	}
	if marker != "" {
		parts = append(parts, "marker="+url.QueryEscape(marker))
	}
	if reverse {
		parts = append(parts, "page_reverse=True")
	}
	return baseURL(r.Request) + r.URL.Path + "?" + strings.Join(parts, "&")
}

// writeList answers a list request with one page of items under collection,
// plus Neutron's "<collection>_links" when the request asked for a page.
func writeList[T any](w http.ResponseWriter, r *request, p *listParams, collection string,
	items []T, id func(*T) string, render func(*T) object) {
	out := make([]object, len(items))
	ids := make([]string, len(items))
	for i := range items {
		out[i] = render(&items[i])
		ids[i] = id(&items[i])
	}
	resp := object{{collection, out}}
	if links := pageLinks(r, p.query, ids); links != nil {
		resp = append(resp, kv{collection + "_links", links})
	}
	writeJSON(w, http.StatusOK, resp)
}
