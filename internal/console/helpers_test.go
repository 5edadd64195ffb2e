package console

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moat-sg/moat/internal/api"
	"github.com/moat-sg/moat/internal/store"
)

// testServer is moat's API with the console mounted, over HTTP.
type testServer struct {
	URL   string
	Store *store.Store
}

// startServer serves the API and the console (auth noauth, or keystone
// against keystoneURL); wrap, if set, wraps the API handler (to add an
// endpoint the API lacks).
func startServer(t testing.TB, keystoneURL string, wrap func(http.Handler) http.Handler) *testServer {
	t.Helper()
	mode := "noauth"
	if keystoneURL != "" {
		mode = "keystone"
	}
	return startServerMode(t, mode, keystoneURL, wrap)
}

// startServerMode is startServer with the identity mode given: noauth,
// headers or keystone.
func startServerMode(t testing.TB, mode, keystoneURL string, wrap func(http.Handler) http.Handler) *testServer {
	t.Helper()
	st, err := store.Open(context.Background(), "sqlite://"+filepath.Join(t.TempDir(), "moat.db"))
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
	var auth api.Authenticator = api.NoAuth{}
	switch mode {
	case "headers":
		auth = api.HeaderAuth{}
	case "keystone":
		auth = api.NewKeystoneAuth(keystoneURL, http.DefaultClient)
	}
	var h http.Handler = api.New(api.Options{Store: st, Auth: auth, Logger: log})
	if wrap != nil {
		h = wrap(h)
	}
	c, err := New(Options{API: h, Store: st, Auth: mode, KeystoneURL: keystoneURL, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Mount(h, c))
	t.Cleanup(func() {
		srv.Close()
		st.Close()
	})
	return &testServer{URL: srv.URL, Store: st}
}

// browser is an HTTP client with cookies that does not follow redirects.
type browser struct {
	t    testing.TB
	base string
	c    *http.Client
}

func newBrowser(t testing.TB, base string) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, base: base, c: &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error {
		return http.ErrUseLastResponse
	}}}
}

func (b *browser) do(req *http.Request) (int, http.Header, string) {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(body)
}

func (b *browser) get(path string) (int, http.Header, string) {
	b.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, b.base+path, nil)
	return b.do(req)
}

// post sends a form, with the page's CSRF token unless form has one.
func (b *browser) post(path string, form url.Values) (int, http.Header, string) {
	b.t.Helper()
	if !form.Has("csrf") {
		form.Set("csrf", b.csrf())
	}
	req, _ := http.NewRequest(http.MethodPost, b.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Origin", b.base)
	return b.do(req)
}

var csrfField = regexp.MustCompile(`name="csrf" value="([0-9a-f]+)"`)

// csrf is the token the console's forms carry for this browser.
func (b *browser) csrf() string {
	b.t.Helper()
	_, _, body := b.get("/ui/login")
	if m := csrfField.FindStringSubmatch(body); m != nil {
		return m[1]
	}
	_, _, body = b.get("/ui/")
	m := csrfField.FindStringSubmatch(body)
	if m == nil {
		b.t.Fatalf("no CSRF token in the page:\n%s", body)
	}
	return m[1]
}

// apiDo calls the Neutron API directly (noauth admin, or with token).
func apiDo(t testing.TB, base, method, path, token, body string, out any) {
	t.Helper()
	req, _ := http.NewRequest(method, base+"/v2.0/"+path, strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("X-Auth-Token", token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode >= 300 {
		t.Fatalf("%s %s: %s %s", method, path, resp.Status, raw)
	}
	if out != nil {
		if err := json.Unmarshal(raw, out); err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
	}
}

// fixture creates, as the noauth admin, a group, a network with a subnet,
// and a port named name in the group bound to host (unbound if "").
func fixture(t testing.TB, base, groupName, portName, host string) (groupID, portID, portIP string) {
	t.Helper()
	var g struct {
		Group struct{ ID string } `json:"security_group"`
	}
	apiDo(t, base, http.MethodPost, "security-groups", "", fmt.Sprintf(`{"security_group": {"name": %q}}`, groupName), &g)
	var n struct {
		Network struct{ ID string } `json:"network"`
	}
	apiDo(t, base, http.MethodPost, "networks", "", `{"network": {"name": "net"}}`, &n)
	apiDo(t, base, http.MethodPost, "subnets", "", fmt.Sprintf(`{"subnet": {"network_id": %q, "cidr": "10.0.0.0/24", "ip_version": 4}}`, n.Network.ID), nil)
	var p struct {
		Port struct {
			ID       string
			FixedIPs []struct {
				IPAddress string `json:"ip_address"`
			} `json:"fixed_ips"`
		} `json:"port"`
	}
	body := map[string]any{"network_id": n.Network.ID, "name": portName, "security_groups": []string{g.Group.ID}}
	if host != "" {
		body["binding:host_id"] = host
	}
	raw, _ := json.Marshal(map[string]any{"port": body})
	apiDo(t, base, http.MethodPost, "ports", "", string(raw), &p)
	return g.Group.ID, p.Port.ID, p.Port.FixedIPs[0].IPAddress
}

// keystoneStub is a Keystone that issues password tokens to a few users
// and validates them, as moat's Keystone identity and the console's
// sign-in use it.
type keystoneStub struct {
	mu     sync.Mutex
	tokens map[string]stubUser
}

type stubUser struct {
	name, password, project, projectID string
	roles                              []string
}

var stubUsers = []stubUser{
	{"alice", "alice-pw", "alpha", "p-alpha", []string{"member"}},
	{"bob", "bob-pw", "beta", "p-beta", []string{"member"}},
	{"root", "root-pw", "admin", "p-admin", []string{"admin", "member"}},
}

func startKeystone(t testing.TB) string {
	k := &keystoneStub{tokens: map[string]stubUser{}}
	srv := httptest.NewServer(k)
	t.Cleanup(srv.Close)
	return srv.URL + "/v3"
}

func (k *keystoneStub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/v3/auth/tokens" {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	switch r.Method {
	case http.MethodPost:
		var body struct {
			Auth struct {
				Identity struct {
					Password struct {
						User struct{ Name, Password string } `json:"user"`
					} `json:"password"`
				} `json:"identity"`
				Scope struct {
					Project struct{ Name string } `json:"project"`
				} `json:"scope"`
			} `json:"auth"`
		}
		json.NewDecoder(r.Body).Decode(&body)
		u := body.Auth.Identity.Password.User
		for _, su := range stubUsers {
			if su.name == u.Name && su.password == u.Password && su.project == body.Auth.Scope.Project.Name {
				tok := "tok-" + su.name + "-" + fmt.Sprint(time.Now().UnixNano())
				k.mu.Lock()
				k.tokens[tok] = su
				k.mu.Unlock()
				w.Header().Set("X-Subject-Token", tok)
				w.WriteHeader(http.StatusCreated)
				k.writeToken(w, su)
				return
			}
		}
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}`)
	case http.MethodGet:
		k.mu.Lock()
		su, ok := k.tokens[r.Header.Get("X-Subject-Token")]
		k.mu.Unlock()
		if !ok {
			w.WriteHeader(http.StatusNotFound)
			io.WriteString(w, `{"error": {"code": 404, "title": "Not Found", "message": "no token"}}`)
			return
		}
		k.writeToken(w, su)
	default:
		w.WriteHeader(http.StatusMethodNotAllowed)
	}
}

func (k *keystoneStub) writeToken(w io.Writer, su stubUser) {
	var roles []map[string]string
	for _, r := range su.roles {
		roles = append(roles, map[string]string{"name": r})
	}
	json.NewEncoder(w).Encode(map[string]any{"token": map[string]any{
		"expires_at": time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano),
		"user":       map[string]string{"id": "u-" + su.name, "name": su.name},
		"project":    map[string]string{"id": su.projectID, "name": su.project},
		"roles":      roles,
	}})
}

// signIn signs b in through the console's form.
func signIn(t testing.TB, b *browser, user, password, project string) {
	t.Helper()
	code, h, body := b.post("/ui/login", url.Values{"username": {user}, "password": {password}, "project": {project}, "domain": {"Default"}, "next": {"/ui/"}})
	if code != http.StatusSeeOther || h.Get("Location") != "/ui/" {
		t.Fatalf("sign in as %s: %d %s\n%s", user, code, h.Get("Location"), body)
	}
}
