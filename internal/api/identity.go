package api

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	"github.com/moat-sg/moat/internal/neutron"
)

// Authenticator turns a request into the identity it runs as, or refuses it.
type Authenticator interface {
	// Authenticate returns the caller's context, or ok=false when the
	// request must be answered 401.
	Authenticate(r *http.Request) (ctx *neutron.Context, ok bool)
	// Challenge is the WWW-Authenticate header of a 401, or "".
	Challenge() string
}

// NewAuthenticator builds the authenticator for --auth.
func NewAuthenticator(mode, keystoneURL string) (Authenticator, error) {
	switch mode {
	case "noauth", "":
		return NoAuth{}, nil
	case "headers":
		return HeaderAuth{}, nil
	case "keystone":
		if keystoneURL == "" {
			return nil, fmt.Errorf("--auth keystone needs --keystone-url (e.g. http://keystone:5000/v3)")
		}
		u, err := url.Parse(keystoneURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("--keystone-url %q is not an absolute URL", keystoneURL)
		}
		return NewKeystoneAuth(keystoneURL, http.DefaultClient), nil
	}
	return nil, fmt.Errorf("unknown --auth %q (want noauth, headers or keystone)", mode)
}

// NoAuth is Neutron's auth_strategy=noauth: a request without X-Project-Id
// is an admin of project "fake_project_id"; a request that names a project
// gets Neutron's admin context without a project (so it sees everything
// and must name the owner of what it creates). X-Auth-Token is ignored.
type NoAuth struct{}

func (NoAuth) Authenticate(r *http.Request) (*neutron.Context, bool) {
	roles := splitRoles(r.Header.Get("X-Roles"))
	if r.Header.Get("X-Project-Id") == "" {
		user := r.Header.Get("X-User-Id")
		if user == "" {
			user = "fake_user_id"
		}
		return &neutron.Context{UserID: user, ProjectID: "fake_project_id", Roles: roles, IsAdmin: true}, true
	}
	return &neutron.Context{Roles: roles, IsAdmin: true}, true
}

func (NoAuth) Challenge() string { return "" }

// HeaderAuth trusts X-User-Id, X-Project-Id and X-Roles as a Keystone auth
// proxy (keystonemiddleware in front of moat) sets them.
type HeaderAuth struct{}

func (HeaderAuth) Authenticate(r *http.Request) (*neutron.Context, bool) {
	user := r.Header.Get("X-User-Id")
	if user == "" {
		return nil, false
	}
	return contextFor(user, r.Header.Get("X-Project-Id"), splitRoles(r.Header.Get("X-Roles"))), true
}

func (HeaderAuth) Challenge() string { return "" }

func splitRoles(s string) []string {
	var out []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

// contextFor applies Neutron's default policy: the admin role is admin,
// advsvc is the advanced-services role.
func contextFor(user, project string, roles []string) *neutron.Context {
	c := &neutron.Context{UserID: user, ProjectID: project, Roles: roles}
	for _, r := range roles {
		switch strings.ToLower(r) {
		case "admin":
			c.IsAdmin = true
		case "advsvc":
			c.IsAdvsvc = true
		}
	}
	return c
}

// KeystoneAuth validates X-Auth-Token against Keystone v3 (GET
// /v3/auth/tokens with X-Subject-Token; the token validates itself, which
// Keystone's default policy allows, so moat needs no service account) and
// caches answers briefly.
type KeystoneAuth struct {
	base   string // .../v3
	client *http.Client
	// TTL bounds how long a valid token's identity is reused; NegativeTTL
	// how long a refused token stays refused without asking again.
	TTL, NegativeTTL time.Duration
	now              func() time.Time

	mu    sync.Mutex
	cache map[string]cachedToken
}

type cachedToken struct {
	ctx     *neutron.Context // nil: Keystone refused the token
	expires time.Time
}

// NewKeystoneAuth validates tokens against the Keystone v3 endpoint at base.
func NewKeystoneAuth(base string, client *http.Client) *KeystoneAuth {
	base = strings.TrimRight(base, "/")
	if !strings.HasSuffix(base, "/v3") {
		base += "/v3"
	}
	return &KeystoneAuth{base: base, client: client, TTL: 60 * time.Second, NegativeTTL: 10 * time.Second,
		now: time.Now, cache: map[string]cachedToken{}}
}

// Challenge points clients at Keystone like keystonemiddleware does.
func (k *KeystoneAuth) Challenge() string {
	return fmt.Sprintf("Keystone uri=%q", strings.TrimSuffix(k.base, "/v3"))
}

const maxCachedTokens = 10000

func (k *KeystoneAuth) Authenticate(r *http.Request) (*neutron.Context, bool) {
	token := r.Header.Get("X-Auth-Token")
	if token == "" {
		return nil, false
	}
	now := k.now()
	k.mu.Lock()
	if c, ok := k.cache[token]; ok && now.Before(c.expires) {
		k.mu.Unlock()
		return c.ctx, c.ctx != nil
	}
	k.mu.Unlock()

	ctx, expires, err := k.validate(r.Context(), token)
	if err != nil {
		// Keystone unreachable or answering garbage: refuse, but do not
		// remember the refusal.
		return nil, false
	}
	entry := cachedToken{ctx: ctx, expires: now.Add(k.NegativeTTL)}
	if ctx != nil {
		entry.expires = now.Add(k.TTL)
		if !expires.IsZero() && expires.Before(entry.expires) {
			entry.expires = expires
		}
	}
	k.mu.Lock()
	if len(k.cache) >= maxCachedTokens {
		for t, c := range k.cache {
			if !now.Before(c.expires) {
				delete(k.cache, t)
			}
		}
		if len(k.cache) >= maxCachedTokens {
			k.cache = map[string]cachedToken{}
		}
	}
	k.cache[token] = entry
	k.mu.Unlock()
	return ctx, ctx != nil
}

// validate asks Keystone about token. A nil context with a nil error means
// Keystone refused the token.
func (k *KeystoneAuth) validate(ctx context.Context, token string) (*neutron.Context, time.Time, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.base+"/auth/tokens", nil)
	if err != nil {
		return nil, time.Time{}, err
	}
	req.Header.Set("X-Auth-Token", token)
	req.Header.Set("X-Subject-Token", token)
	req.Header.Set("Accept", "application/json")
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, time.Time{}, err
	}
	defer resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusOK:
	case resp.StatusCode == http.StatusUnauthorized || resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusForbidden:
		return nil, time.Time{}, nil
	default:
		return nil, time.Time{}, fmt.Errorf("keystone answered %s", resp.Status)
	}
	var body struct {
		Token struct {
			ExpiresAt string `json:"expires_at"`
			User      struct {
				ID string `json:"id"`
			} `json:"user"`
			Project *struct {
				ID string `json:"id"`
			} `json:"project"`
			Roles []struct {
				Name string `json:"name"`
			} `json:"roles"`
		} `json:"token"`
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(&body); err != nil {
		return nil, time.Time{}, fmt.Errorf("decode keystone token: %w", err)
	}
	if body.Token.User.ID == "" {
		return nil, time.Time{}, fmt.Errorf("keystone token without a user")
	}
	project := ""
	if body.Token.Project != nil {
		project = body.Token.Project.ID
	}
	var roles []string
	for _, r := range body.Token.Roles {
		roles = append(roles, r.Name)
	}
	expires, _ := time.Parse(time.RFC3339Nano, body.Token.ExpiresAt)
	return contextFor(body.Token.User.ID, project, roles), expires, nil
}

// writeUnauthorized is keystonemiddleware's 401.
func writeUnauthorized(w http.ResponseWriter, challenge string) {
	if challenge != "" {
		w.Header().Set("WWW-Authenticate", challenge)
	}
	writeJSON(w, http.StatusUnauthorized, map[string]any{"error": object{
		{"code", 401}, {"title", "Unauthorized"}, {"message", "The request you have made requires authentication."},
	}})
}
