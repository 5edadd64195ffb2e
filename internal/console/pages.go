package console

import (
	"bytes"
	"errors"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"path"
	"sort"
	"strings"
	"time"
)

// parsePages parses each page with the layout.
func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"short": func(id string) string {
			if len(id) > 8 {
				return id[:8]
			}
			return id
		},
		"join": strings.Join,
	}
	base, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	pages := map[string]*template.Template{}
	for _, n := range names {
		name := path.Base(n)
		if name == "layout.html" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, err
		}
		pages[strings.TrimSuffix(name, ".html")] = t
	}
	return pages, nil
}

// page is what every page's template gets.
type page struct {
	Title string
	Nav   string
	Who   *caller
	// Projects are the choices of the admin's project selector.
	Projects []string
	Error    string
	Notice   string
	Data     any
	Keystone bool
	// Here is the page's own address, where the project selector returns.
	Here string
}

// render writes a page (buffered, so that a template error is a clean
// 500, not half a page).
func (c *Console) render(w http.ResponseWriter, status int, name string, p *page) {
	var b bytes.Buffer
	if err := c.pages[name].ExecuteTemplate(&b, "layout.html", p); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
		http.Error(w, "Internal Server Error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	w.Write(b.Bytes())
}

// fail shows an error page: the API's status and message, or a form's
// mistake.
func (c *Console) fail(w http.ResponseWriter, r *http.Request, who *caller, err error) {
	status := http.StatusInternalServerError
	var ae *apiError
	var fe *formError
	switch {
	case errors.As(err, &ae):
		status = ae.Status
		if status == http.StatusUnauthorized && who.sess != nil {
			// The token expired or was revoked: sign in again.
			http.Redirect(w, r, Prefix+"/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
			return
		}
	case errors.As(err, &fe):
		status = http.StatusBadRequest
	default:
		c.log.Error("console: request failed", "path", r.URL.Path, "err", err)
	}
	c.render(w, status, "error", &page{Title: http.StatusText(status), Who: who, Error: err.Error()})
}

func (c *Console) route(w http.ResponseWriter, r *http.Request, who *caller, p string) {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	post := r.Method == http.MethodPost
	switch {
	case p == "/":
		if post {
			c.notAllowed(w)
			return
		}
		c.groupsPage(w, r, who)
	case p == "/project" && post:
		c.switchProject(w, r, who)
	case segs[0] == "security-groups":
		c.groupRoutes(w, r, who, segs[1:], post)
	case segs[0] == "ports" && len(segs) == 1 && !post:
		c.portsPage(w, r, who)
	case segs[0] == "ports" && len(segs) == 2 && !post:
		c.portPage(w, r, who, segs[1])
	case p == "/trace" && !post:
		c.tracePage(w, r, who)
	case p == "/trace/allow" && post:
		c.allow(w, r, who)
	default:
		c.render(w, http.StatusNotFound, "error", &page{Title: "Not Found", Who: who, Error: "There is no such page."})
	}
}

func (c *Console) notAllowed(w http.ResponseWriter) {
	http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
}

// groupRoutes: /security-groups (POST: create), /{id}, /{id}/delete,
// /{id}/rules (POST), /{id}/rules/{rid}/delete.
func (c *Console) groupRoutes(w http.ResponseWriter, r *http.Request, who *caller, segs []string, post bool) {
	switch {
	case len(segs) == 0 && post:
		c.createGroup(w, r, who)
	case len(segs) == 1 && !post:
		c.groupPage(w, r, who, segs[0], nil, http.StatusOK, "")
	case len(segs) == 2 && segs[1] == "delete":
		c.deleteGroup(w, r, who, segs[0], post)
	case len(segs) == 2 && segs[1] == "rules" && post:
		c.createRule(w, r, who, segs[0])
	case len(segs) == 4 && segs[1] == "rules" && segs[3] == "delete":
		c.deleteRule(w, r, who, segs[0], segs[2], post)
	default:
		c.render(w, http.StatusNotFound, "error", &page{Title: "Not Found", Who: who, Error: "There is no such page."})
	}
}

// projects lists the projects an admin can switch to: those owning a
// group or a port, and the admin's own.
func (c *Console) projects(r *http.Request, who *caller) []string {
	if !who.Admin {
		return nil
	}
	all := *who
	all.ViewProject = ""
	set := map[string]bool{}
	if who.Project != "" {
		set[who.Project] = true
	}
	if who.sess != nil && who.sess.ProjectID != "" {
		set[who.sess.ProjectID] = true
		delete(set, who.Project)
	}
	// Only the owners are read: the lists can be long.
	only := url.Values{"fields": {"project_id"}}
	var gs struct {
		Groups []group `json:"security_groups"`
	}
	if err := c.call(r.Context(), &all, http.MethodGet, "security-groups", only, nil, &gs); err == nil {
		for _, g := range gs.Groups {
			set[g.ProjectID] = true
		}
	}
	var ps struct {
		Ports []port `json:"ports"`
	}
	if err := c.call(r.Context(), &all, http.MethodGet, "ports", only, nil, &ps); err == nil {
		for _, p := range ps.Ports {
			set[p.ProjectID] = true
		}
	}
	delete(set, "")
	out := make([]string, 0, len(set))
	for p := range set {
		out = append(out, p)
	}
	sort.Strings(out)
	return out
}

func (c *Console) newPage(r *http.Request, who *caller, title, nav string) *page {
	here := r.URL.Path
	if q := r.URL.Query(); len(q) > 0 {
		q.Del("notice")
		if len(q) > 0 {
			here += "?" + q.Encode()
		}
	}
	return &page{Title: title, Nav: nav, Who: who, Projects: c.projects(r, who), Keystone: c.auth == "keystone",
		Notice: r.URL.Query().Get("notice"), Here: here}
}

func (c *Console) switchProject(w http.ResponseWriter, r *http.Request, who *caller) {
	if !who.Admin {
		c.render(w, http.StatusForbidden, "error", &page{Title: "Forbidden", Who: who, Error: "Only an admin can switch projects."})
		return
	}
	c.setCookie(w, r, projectCookie, strings.TrimSpace(r.PostForm.Get("project")), who.expires())
	http.Redirect(w, r, localNext(r.PostForm.Get("next")), http.StatusSeeOther)
}

// expires is when the caller's cookies should go: with the session, or
// with the browser.
func (who *caller) expires() time.Time {
	if who.sess != nil {
		return who.sess.Expires
	}
	return time.Time{}
}

// localNext keeps a redirect target on the console.
func localNext(next string) string {
	if !strings.HasPrefix(next, Prefix+"/") || strings.HasPrefix(next, "//") || strings.Contains(next, "\\") {
		return Prefix + "/"
	}
	return next
}

// redirect answers a POST with a redirect to a console page.
func redirect(w http.ResponseWriter, r *http.Request, to, notice string) {
	if notice != "" {
		sep := "?"
		if strings.Contains(to, "?") {
			sep = "&"
		}
		to += sep + "notice=" + url.QueryEscape(notice)
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
}
