package api

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// fakeKeystone answers GET /v3/auth/tokens like Keystone v3 does: 200 with
// the token body for a known token validating itself, 401 otherwise.
type fakeKeystone struct {
	calls  atomic.Int32
	tokens map[string]string // token -> JSON "token" object
}

func (k *fakeKeystone) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	k.calls.Add(1)
	if r.Method != http.MethodGet || r.URL.Path != "/v3/auth/tokens" {
		http.NotFound(w, r)
		return
	}
	subject, auth := r.Header.Get("X-Subject-Token"), r.Header.Get("X-Auth-Token")
	body, ok := k.tokens[subject]
	if !ok || auth != subject {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		io.WriteString(w, `{"error": {"code": 401, "title": "Unauthorized", "message": "The request you have made requires authentication."}}`)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Subject-Token", subject)
	io.WriteString(w, `{"token": `+body+`}`)
}

func keystoneToken(user, project string, roles []string, expires time.Time) string {
	var rs []string
	for _, r := range roles {
		rs = append(rs, `{"id": "id-`+r+`", "name": "`+r+`"}`)
	}
	return `{"methods": ["password"], "user": {"id": "` + user + `", "name": "` + user + `", "domain": {"id": "default"}},
		"project": {"id": "` + project + `", "name": "p", "domain": {"id": "default"}},
		"roles": [` + strings.Join(rs, ", ") + `], "expires_at": "` + expires.UTC().Format("2006-01-02T15:04:05.000000Z") + `",
		"issued_at": "2026-01-01T00:00:00.000000Z"}`
}

func TestKeystoneAuth(t *testing.T) {
	later := time.Now().Add(time.Hour)
	ks := &fakeKeystone{tokens: map[string]string{
		"admin-token":  keystoneToken("admin", "adminproject", []string{"admin", "member"}, later),
		"member-token": keystoneToken("alice", "projecta", []string{"member", "reader"}, later),
	}}
	ksrv := httptest.NewServer(ks)
	defer ksrv.Close()
	auth, err := NewAuthenticator(IdentityConfig{Mode: "keystone", KeystoneURL: ksrv.URL + "/v3"})
	if err != nil {
		t.Fatal(err)
	}
	srv := newTestServer(t, auth)
	get := func(path, token string) (int, http.Header, string) {
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		if token != "" {
			req.Header.Set("X-Auth-Token", token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, resp.Header, string(b)
	}
	unauthorized := `{"error":{"code":401,"title":"Unauthorized","message":"The request you have made requires authentication."}}`
	challenge := `Keystone uri="` + ksrv.URL + `"`

	// The golden keystone-mode exchanges: no token, a bogus token, the
	// version document without a token, /v2.0/ without a token.
	for _, c := range []struct{ path, token string }{
		{"/v2.0/security-groups", ""},
		{"/v2.0/security-groups", "bogus"},
		{"/v2.0/", ""},
	} {
		status, h, body := get(c.path, c.token)
		if status != 401 || body != unauthorized || h.Get("WWW-Authenticate") != challenge || h.Get("Content-Type") != "application/json" {
			t.Errorf("GET %s token %q: %d %q %q", c.path, c.token, status, h.Get("WWW-Authenticate"), body)
		}
		if !requestIDRe.MatchString(h.Get(requestIDHeader)) {
			t.Errorf("GET %s: no request id on the 401", c.path)
		}
	}
	if status, _, _ := get("/", ""); status != 200 {
		t.Errorf("version document without token: %d", status)
	}

	// A member sees its own project's default group; the admin sees all.
	status, _, body := get("/v2.0/security-groups?fields=project_id&fields=name", "member-token")
	if status != 200 || body != `{"security_groups":[{"name":"default","project_id":"projecta"}]}` {
		t.Fatalf("member list: %d %s", status, body)
	}
	status, _, body = get("/v2.0/security-groups?fields=project_id&sort_key=project_id&sort_dir=asc", "admin-token")
	if status != 200 || body != `{"security_groups":[{"project_id":"adminproject"},{"project_id":"projecta"}]}` {
		t.Fatalf("admin list: %d %s", status, body)
	}

	// Answers are cached: more requests with known tokens reach Keystone no more.
	before := ks.calls.Load()
	for i := 0; i < 5; i++ {
		get("/v2.0/security-groups", "member-token")
		get("/v2.0/security-groups", "bogus")
	}
	if after := ks.calls.Load(); after != before {
		t.Fatalf("cached tokens were validated again: %d more Keystone calls", after-before)
	}
}

func TestKeystoneAuthCacheExpires(t *testing.T) {
	soon := time.Now().Add(30 * time.Second)
	ks := &fakeKeystone{tokens: map[string]string{"t": keystoneToken("u", "p", []string{"member"}, soon)}}
	ksrv := httptest.NewServer(ks)
	defer ksrv.Close()
	k := NewKeystoneAuth(ksrv.URL, ksrv.Client())
	now := time.Now()
	k.now = func() time.Time { return now }
	req := httptest.NewRequest(http.MethodGet, "/v2.0/security-groups", nil)
	req.Header.Set("X-Auth-Token", "t")
	ctx, err := k.Authenticate(req)
	if err != nil || ctx.ProjectID != "p" || ctx.UserID != "u" || ctx.IsAdmin {
		t.Fatalf("got %+v %v", ctx, err)
	}
	// Within the TTL and the token's life: served from the cache.
	now = now.Add(20 * time.Second)
	k.Authenticate(req)
	if ks.calls.Load() != 1 {
		t.Fatalf("%d Keystone calls, want 1", ks.calls.Load())
	}
	// Past the token's own expiry (30s, before the 60s TTL): asked again,
	// and Keystone now refuses it.
	now = now.Add(15 * time.Second)
	delete(ks.tokens, "t")
	if _, err := k.Authenticate(req); !errors.Is(err, ErrUnauthenticated) {
		t.Fatalf("expired token from the cache: %v, want refused", err)
	}
	if ks.calls.Load() != 2 {
		t.Fatalf("%d Keystone calls, want 2", ks.calls.Load())
	}
}

func TestHeaderAndNoAuthIdentity(t *testing.T) {
	cases := []struct {
		name    string
		auth    Authenticator
		headers map[string]string
		ok      bool
		project string
		admin   bool
	}{
		{"headers member", HeaderAuth{}, map[string]string{"X-User-Id": "u", "X-Project-Id": "p", "X-Roles": "member,reader"}, true, "p", false},
		{"headers admin", HeaderAuth{}, map[string]string{"X-User-Id": "u", "X-Project-Id": "p", "X-Roles": "reader, Admin"}, true, "p", true},
		{"headers without user", HeaderAuth{}, map[string]string{"X-Project-Id": "p"}, false, "", false},
		{"noauth bare", NoAuth{}, nil, true, "fake_project_id", true},
		{"noauth token ignored", NoAuth{}, map[string]string{"X-Auth-Token": "x"}, true, "fake_project_id", true},
		{"noauth with project", NoAuth{}, map[string]string{"X-Project-Id": "p", "X-Roles": "member"}, true, "", true},
	}
	for _, c := range cases {
		req := httptest.NewRequest(http.MethodGet, "/v2.0/security-groups", nil)
		for k, v := range c.headers {
			req.Header.Set(k, v)
		}
		ctx, err := c.auth.Authenticate(req)
		ok := err == nil
		if ok != c.ok || (ok && (ctx.ProjectID != c.project || ctx.IsAdmin != c.admin)) || (!ok && !errors.Is(err, ErrUnauthenticated)) {
			t.Errorf("%s: got %+v %v", c.name, ctx, err)
		}
	}
}

func TestNewAuthenticatorRejectsBadConfig(t *testing.T) {
	for _, c := range []IdentityConfig{
		{Mode: "kerberos"},
		{Mode: "keystone"},
		{Mode: "keystone", KeystoneURL: "not a url"},
		{Mode: "keystone", KeystoneURL: "http://keystone:5000/v3", KeystoneTimeout: -time.Second},
	} {
		if _, err := NewAuthenticator(c); err == nil {
			t.Errorf("NewAuthenticator(%+v) accepted", c)
		}
	}
}

func TestHeadersModeAnswers401AsJSON(t *testing.T) {
	srv := newTestServer(t, HeaderAuth{})
	resp, err := http.Get(srv.URL + "/v2.0/security-groups")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != 401 || body["error"]["code"] != float64(401) {
		t.Fatalf("%d %v %v", resp.StatusCode, body, err)
	}
}
