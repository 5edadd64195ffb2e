// Package console is moat's web console at /ui/: security groups and their
// rules (Horizon's columns and Add Rule form), ports with their compiled
// rules, and a visual trace that shows where a packet stops and creates
// the rule that lets it through.
//
// The console is a client of the Neutron API in the same process: every
// read and write goes through the API handler with the caller's identity
// (a Keystone token from the sign-in, or the server's noauth/headers
// identity), so the API's policy, project scoping and validation apply
// unchanged. Only the trace and the compiled rules read the store directly,
// for the host the port is bound to, after the API has shown that the
// caller may see the port. Pages are html/template (which escapes what
// users named things) with a little vanilla JS; everything is embedded in
// the binary.
package console

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"embed"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"html/template"
	"io/fs"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/moat-sg/moat/internal/store"
)

// Prefix is where the console is served.
const Prefix = "/ui"

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Options configure the console.
type Options struct {
	// API is the Neutron API handler the console calls in process.
	API http.Handler
	// Store gives the trace and the compiled rules the port's host.
	Store *store.Store
	// Auth is the server's identity mode: noauth, headers or keystone.
	Auth string
	// KeystoneURL is the Keystone v3 endpoint the sign-in asks for tokens
	// (with Auth keystone).
	KeystoneURL string
	// Client is the HTTP client of the sign-in; nil uses a default one
	// with a timeout.
	Client *http.Client
	Logger *slog.Logger
	// Counters asks the agents for hit counters (the port page); nil
	// shows none.
	Counters CountersFunc
}

// Console serves /ui/.
type Console struct {
	api      http.Handler
	store    *store.Store
	auth     string
	keystone string // .../v3, with Auth keystone
	client   *http.Client
	counters CountersFunc
	log      *slog.Logger
	pages    map[string]*template.Template
	static   http.Handler
}

// New builds the console.
func New(o Options) (*Console, error) {
	c := &Console{api: o.API, store: o.Store, auth: o.Auth, client: o.Client, log: o.Logger, counters: o.Counters}
	if c.auth == "" {
		c.auth = "noauth"
	}
	switch c.auth {
	case "noauth", "headers":
	case "keystone":
		if o.KeystoneURL == "" {
			return nil, fmt.Errorf("console: keystone sign-in needs the Keystone URL")
		}
		c.keystone = strings.TrimRight(o.KeystoneURL, "/")
		if !strings.HasSuffix(c.keystone, "/v3") {
			c.keystone += "/v3"
		}
	default:
		return nil, fmt.Errorf("console: unknown identity mode %q", c.auth)
	}
	if c.client == nil {
		c.client = &http.Client{Timeout: 15 * time.Second}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	c.static = http.StripPrefix(Prefix+"/static/", http.FileServerFS(sub))
	return c, nil
}

// Mount serves the console at /ui/ and everything else with next.
func Mount(next http.Handler, c *Console) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == Prefix || strings.HasPrefix(r.URL.Path, Prefix+"/") {
			c.ServeHTTP(w, r)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Cookies. The session holds the Keystone token (HttpOnly: no script
// reads it); SameSite=Strict keeps other sites' forms from sending any of
// them.
const (
	sessionCookie = "moat_session"
	csrfCookie    = "moat_csrf"
	projectCookie = "moat_project"
)

// session is what the console knows of the signed-in user. Only Token is
// trusted (the API validates it on every call); the rest is for display
// and for offering the admin's project selector.
type session struct {
	Token     string    `json:"t"`
	User      string    `json:"u"`
	Project   string    `json:"p"`
	ProjectID string    `json:"pid"`
	Admin     bool      `json:"a"`
	Expires   time.Time `json:"e"`
}

// caller is who a request runs as.
type caller struct {
	// sess is the Keystone session, nil in the other modes.
	sess *session
	// header carries the identity to the API.
	header http.Header
	Admin  bool
	User   string
	// Project is the caller's own project, for display.
	Project string
	// ViewProject is the project an admin chose to look at ("" for all).
	ViewProject string
	// CSRF is the token the page's forms carry.
	CSRF string
	// host and remote are the browser's request's, for the API's
	// links and logs.
	host, remote string
}

func (c *Console) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; script-src 'self'; connect-src 'self'; style-src 'self'; img-src 'self' data:; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "same-origin")
	h.Set("X-Frame-Options", "DENY")
	path := strings.TrimPrefix(r.URL.Path, Prefix)
	if strings.HasPrefix(path, "/static/") {
		if strings.HasSuffix(path, "/") || r.Method != http.MethodGet && r.Method != http.MethodHead {
			http.NotFound(w, r) // files only: no directory listing
			return
		}
		c.static.ServeHTTP(w, r)
		return
	}
	if path == "" {
		http.Redirect(w, r, Prefix+"/", http.StatusFound)
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 1<<20)
	csrf, fresh := c.csrfToken(w, r)
	if r.Method == http.MethodPost {
		if err := c.checkCSRF(r, csrf, fresh); err != nil {
			c.log.Warn("console: refused a POST", "path", r.URL.Path, "err", err)
			http.Error(w, "Forbidden: "+err.Error()+". Reload the page and try again.", http.StatusForbidden)
			return
		}
	} else if r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
		return
	}
	switch path {
	case "/login":
		c.login(w, r, csrf)
		return
	case "/logout":
		if r.Method != http.MethodPost {
			http.Error(w, "Method Not Allowed", http.StatusMethodNotAllowed)
			return
		}
		c.clearCookie(w, r, sessionCookie)
		c.clearCookie(w, r, projectCookie)
		http.Redirect(w, r, Prefix+"/login", http.StatusSeeOther)
		return
	}
	who, ok := c.caller(r)
	if !ok {
		http.Redirect(w, r, Prefix+"/login?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
		return
	}
	who.CSRF, who.host, who.remote = csrf, r.Host, r.RemoteAddr
	c.route(w, r, who, path)
}

// caller establishes who r runs as, or reports that they must sign in.
func (c *Console) caller(r *http.Request) (*caller, bool) {
	who := &caller{header: http.Header{}}
	switch c.auth {
	case "noauth":
		// As with the API: no credentials, the admin of fake_project_id.
		who.Admin, who.User, who.Project = true, "admin (noauth)", "fake_project_id"
	case "headers":
		// The auth proxy in front of moat set these for the console's
		// requests as for the API's.
		for _, k := range []string{"X-User-Id", "X-Project-Id", "X-Roles"} {
			if v := r.Header.Get(k); v != "" {
				who.header.Set(k, v)
			}
		}
		who.User, who.Project = r.Header.Get("X-User-Id"), r.Header.Get("X-Project-Id")
		for _, role := range strings.Split(r.Header.Get("X-Roles"), ",") {
			who.Admin = who.Admin || strings.EqualFold(strings.TrimSpace(role), "admin")
		}
	case "keystone":
		s := readSession(r)
		if s == nil || !time.Now().Before(s.Expires) {
			return nil, false
		}
		who.sess = s
		who.header.Set("X-Auth-Token", s.Token)
		who.Admin, who.User, who.Project = s.Admin, s.User, s.Project
	}
	if who.Admin {
		if ck, err := r.Cookie(projectCookie); err == nil {
			who.ViewProject = ck.Value
		}
	}
	return who, true
}

func readSession(r *http.Request) *session {
	ck, err := r.Cookie(sessionCookie)
	if err != nil {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(ck.Value)
	if err != nil {
		return nil
	}
	var s session
	if json.Unmarshal(raw, &s) != nil || s.Token == "" {
		return nil
	}
	return &s
}

// secure reports whether the browser reached the console over HTTPS.
func secure(r *http.Request) bool {
	return r.TLS != nil || r.Header.Get("X-Forwarded-Proto") == "https"
}

func (c *Console) setCookie(w http.ResponseWriter, r *http.Request, name, value string, expires time.Time) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: value, Path: Prefix + "/", Expires: expires,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode})
}

func (c *Console) clearCookie(w http.ResponseWriter, r *http.Request, name string) {
	http.SetCookie(w, &http.Cookie{Name: name, Value: "", Path: Prefix + "/", MaxAge: -1,
		HttpOnly: true, Secure: secure(r), SameSite: http.SameSiteStrictMode})
}

// csrfToken is the token the page's forms carry, derived from the
// browser's random CSRF cookie (set here on its first visit), which another
// site can neither read (HttpOnly, and not its origin) nor send
// (SameSite=Strict). It is not keyed by the server, so that replicas behind
// one address accept each other's forms.
// fresh reports that the browser had no CSRF cookie: its POST, if this
// request is one, cannot be the console's.
func (c *Console) csrfToken(w http.ResponseWriter, r *http.Request) (token string, fresh bool) {
	seed := ""
	if ck, err := r.Cookie(csrfCookie); err == nil && len(ck.Value) == 32 {
		seed = ck.Value
	}
	if seed == "" {
		b := make([]byte, 16)
		rand.Read(b)
		seed = hex.EncodeToString(b)
		c.setCookie(w, r, csrfCookie, seed, time.Time{})
		fresh = true
	}
	sum := sha256.Sum256([]byte("moat-console-csrf:" + seed))
	return hex.EncodeToString(sum[:]), fresh
}

// checkCSRF refuses a POST from another origin or without the page's
// token.
func (c *Console) checkCSRF(r *http.Request, want string, fresh bool) error {
	if o := r.Header.Get("Origin"); o != "" && o != "null" {
		u, err := url.Parse(o)
		if err != nil || u.Host != r.Host {
			return fmt.Errorf("the request comes from another origin (%s)", o)
		}
	}
	if fresh {
		return fmt.Errorf("no CSRF cookie")
	}
	if err := r.ParseForm(); err != nil {
		return fmt.Errorf("unreadable form")
	}
	got := r.PostForm.Get("csrf")
	if subtle.ConstantTimeCompare([]byte(got), []byte(want)) != 1 {
		return fmt.Errorf("the form's CSRF token is missing or wrong")
	}
	return nil
}
